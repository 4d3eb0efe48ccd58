"""The gRPC edge: proto <-> domain mapping, error mapping, servicers and the server."""
