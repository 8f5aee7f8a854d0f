"""A fake Kubernetes API server for tests, and builders of realistic API objects.

`server.FakeKubeAPI` serves nodes, services (and their status subresource), endpoints,
namespaces, secrets, endpointslices and events.k8s.io Events over HTTPS the way kube-apiserver
does (bearer tokens and per-verb authorization, Status errors, paged lists with continue tokens
and consistent snapshots, discovery, patches, managedFields, Table output for kubectl).
`objects` builds Node, Service, EndpointSlice and Secret dicts shaped like real ones;
`validation`, `fields` and `patches` hold the real server's validation rules and wording, its
managedFields bookkeeping and its patch types.
"""
