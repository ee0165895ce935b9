"""The job: the steps of one run in order (octoDNS' manager) — load the desired state, open a session,
fetch, plan, execute, report. `clock` and `load` are light for the offline commands; `session` holds
the network side."""
