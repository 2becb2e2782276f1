"""Runners start one model job (a container or a subprocess) with the contract's mounts."""
