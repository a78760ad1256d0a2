"""Domain logic: what the service does, in terms of peers, sessions, messages, conclusions.
Servicers call it after validating input; it calls the store for every SQL statement."""
