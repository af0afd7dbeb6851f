"""HTTP routes of the sandbox, one module per API family; each exposes ``routes: list[BaseRoute]``."""
