"""State the replicas of one deployment share: job records and their event logs, Jockey sessions,
cancels, and the bulk-ingest ledger.

- `base`: the interface (`SharedState`) and what it stores (`JobRecord`, `CancelKey`);
- `memory`: one process (the default): job records in memory, sessions in the backend's file;
- `redis_state`: Redis, when `TL_MCP_REDIS_URL` is set (Streams for event logs, pub/sub for cancels,
  TTLs on everything, a heartbeat per replica);
- `redis_ledger`: the bulk-ingest ledger (`ingest_ledger.IngestLedger`) in the same Redis, in place
  of the backend's SQLite file.

`app.py` picks them from the settings. Callers import from the submodules.
"""
