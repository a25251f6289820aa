"""Lambda handlers of the state machine: thin (Powertools, parsing, wiring) over datadominion.run_tasks."""
