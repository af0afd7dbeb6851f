"""Jobs: work that may outlast one tool call.

- `events`: what a job tells its callers (an event log read through a cursor) and what it has learned
  (typed progress, which also declares the upstream handles another replica could follow);
- `relay`: the event log as MCP progress notifications;
- `manager`: the job table, its bounds, and one call's wait on a job;
- `portable`: signed job ids that carry upstream handles, and the table of job kinds that can resume
  on a replica that never saw them.

Callers import from the submodules; this package exports nothing, so no import order matters.
"""
