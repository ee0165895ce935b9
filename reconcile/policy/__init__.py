"""Policy as code: the organisation's rules for access keys (`policy.py`, `rules.py`) and what a plan's
changes would introduce (`changes.py`). Pure: no files, no network, the clock an argument. Imported
only when a policy is configured: `validate` of the desired files runs on every commit."""
