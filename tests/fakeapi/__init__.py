"""A fake Kubernetes API server for tests, and builders of realistic API objects.

`server.FakeKubeAPI` serves nodes, services, endpointslices and namespaces over HTTPS
the way kube-apiserver does (bearer tokens, Status errors, paged lists with continue
tokens and consistent snapshots, discovery, Table output for kubectl).
`objects` builds Node, Service and EndpointSlice dicts shaped like real ones.
"""
