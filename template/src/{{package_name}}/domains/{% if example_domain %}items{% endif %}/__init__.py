"""Items: the example domain (CRUD with path, query and body parameters)."""
