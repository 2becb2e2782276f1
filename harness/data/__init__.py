"""Data tools: the bundled sample set, free-form masks, importing photos, checking a data tree."""
