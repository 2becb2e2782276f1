"""Where a run's units of work run: one after another, or several at once on separate devices.

A run is cut into independent tasks (a model's describe; a *lane*: one model trained on one
source, then predicting every test set) that the pipeline hands to an executor. `slots` runs them
on this host, one task per slot (a GPU, or a share of the CPU cores), never two on one slot.
`slurm` (with `node`, its node side: `node_runners` for the runner there, `node_report` for the
report) turns each job of those tasks, and the report, into a Slurm batch job that the harness
follows from the login node, staying the ledger's only writer.
"""
