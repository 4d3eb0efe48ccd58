"""The read-only web console: server-rendered HTML over the service layer's queries, behind the same API keys
(or JWTs) and role checks as the gRPC API."""
