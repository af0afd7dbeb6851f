"""Jobs: work that may outlast one tool call.

- `events`: what a job tells its callers (an event log read through a cursor) and what it has learned
  (typed progress, which also declares the upstream handles another replica could follow);
- `relay`: the event log as MCP progress notifications;
- `job`: a job and the values around it (its worker, its partial result, what a portable id rebuilds);
- `manager`: the job table, its bounds, and one call's wait on a job;
- `replicas`: with shared state, a handed-out job published by its replica and followed from the others;
- `portable`: signed job ids that carry upstream handles, and the table of job kinds that can resume
  on a replica that never saw them.

Callers import from the submodules; this package exports nothing, so no import order matters.
"""
