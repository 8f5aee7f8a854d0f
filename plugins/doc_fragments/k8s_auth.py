# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The Kubernetes connection, named and read as kubernetes.core does."""

    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the content of one as a dict. Without it, and without
        O(host), the default kubeconfig (C(KUBECONFIG) or C(~/.kube/config)) is read, or the
        in-cluster service account is used when the plugin runs in a pod.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable (a path).
    type: raw
  context:
    description:
      - The kubeconfig context to use. Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example C(https://10.0.0.1:6443).
        Overrides the server of the kubeconfig. Can also be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - A bearer token for the API server. Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Verification is on unless this
        is set to V(false). Can also be set with E(K8S_AUTH_VERIFY_SSL) or E(K8S_AUTH_VALIDATE_CERTS).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate that signed the API server's certificate.
        Can also be set with E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate for TLS client authentication.
        Can also be set with E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert). Can also be set with E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  proxy:
    description:
      - An HTTP proxy URL to reach the API server through. Can also be set with E(K8S_AUTH_PROXY).
    type: str
  no_proxy:
    description:
      - Hosts, domains or networks (comma-separated) reached without O(proxy), for example
        C(localhost,.svc,10.0.0.0/8). Can also be set with E(K8S_AUTH_NO_PROXY).
    type: str
    version_added: 0.2.0
  impersonate_user:
    description:
      - Act as this user (the C(Impersonate-User) header), as in C(kubernetes.core). The account needs
        C(impersonate) on C(users) (and on C(groups) for O(impersonate_groups)).
      - Can also be set with E(K8S_AUTH_IMPERSONATE_USER).
    type: str
    version_added: 0.3.0
  impersonate_groups:
    description:
      - Groups to act in, with O(impersonate_user) (one C(Impersonate-Group) header each).
      - Can also be set with E(K8S_AUTH_IMPERSONATE_GROUPS), comma-separated.
    type: list
    elements: str
    version_added: 0.3.0
  proxy_headers:
    description:
      - Headers sent to O(proxy), as in C(kubernetes.core).
    type: dict
    version_added: 0.2.0
    suboptions:
      basic_auth:
        description: C(user:password) for the C(Authorization) header.
        type: str
      proxy_basic_auth:
        description: C(user:password) for the C(Proxy-Authorization) header.
        type: str
      user_agent:
        description: The C(User-Agent) header.
        type: str
'''

    # The lookup reads the same variables through get_option(); merged into the options above.
    PLUGINS = r'''
options:
  kubeconfig:
    env: [{name: K8S_AUTH_KUBECONFIG}]
  context:
    env: [{name: K8S_AUTH_CONTEXT}]
  host:
    env: [{name: K8S_AUTH_HOST}]
  api_key:
    env: [{name: K8S_AUTH_API_KEY}]
  validate_certs:
    env: [{name: K8S_AUTH_VERIFY_SSL}, {name: K8S_AUTH_VALIDATE_CERTS}]
  ca_cert:
    env: [{name: K8S_AUTH_SSL_CA_CERT}]
  client_cert:
    env: [{name: K8S_AUTH_CERT_FILE}]
  client_key:
    env: [{name: K8S_AUTH_KEY_FILE}]
  proxy:
    env: [{name: K8S_AUTH_PROXY}]
  no_proxy:
    env: [{name: K8S_AUTH_NO_PROXY}]
  impersonate_user:
    env: [{name: K8S_AUTH_IMPERSONATE_USER}]
  impersonate_groups:
    env: [{name: K8S_AUTH_IMPERSONATE_GROUPS}]
'''
