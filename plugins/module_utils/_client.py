# -*- coding: utf-8 -*-
# Copyright: Portico contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes API client: connection settings, paged raw-JSON lists, clear errors.

Private to this collection. Connection options and environment variables follow
kubernetes.core, so AWX's Kubernetes credential works unchanged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gc
import json
import os
import re
import threading
import traceback
import unicodedata

from ansible_collections.portico.k8s.plugins.module_utils import _fields

try:
    import kubernetes
    from kubernetes.client.exceptions import ApiException
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

    class ApiException(Exception):
        """Stands in when the kubernetes client is missing; never raised."""

# Option name -> environment variables (the first one set wins), as kubernetes.core reads them.
CONNECTION_ENV = {
    'kubeconfig': ('K8S_AUTH_KUBECONFIG',),
    'context': ('K8S_AUTH_CONTEXT',),
    'host': ('K8S_AUTH_HOST',),
    'api_key': ('K8S_AUTH_API_KEY',),
    'validate_certs': ('K8S_AUTH_VERIFY_SSL', 'K8S_AUTH_VALIDATE_CERTS'),
    'ca_cert': ('K8S_AUTH_SSL_CA_CERT',),
    'client_cert': ('K8S_AUTH_CERT_FILE',),
    'client_key': ('K8S_AUTH_KEY_FILE',),
    'proxy': ('K8S_AUTH_PROXY',),
    'no_proxy': ('K8S_AUTH_NO_PROXY',),
    'impersonate_user': ('K8S_AUTH_IMPERSONATE_USER',),
    'impersonate_groups': ('K8S_AUTH_IMPERSONATE_GROUPS',),
}
# Connection options without an environment variable (as in kubernetes.core).
CONNECTION_OPTIONS = tuple(CONNECTION_ENV) + ('proxy_headers',)
PROXY_HEADERS = ('basic_auth', 'proxy_basic_auth', 'user_agent')

SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token'

# resource -> (API class, cluster-wide list method, namespaced list method, List kind, path)
RESOURCES = {
    'nodes': ('CoreV1Api', 'list_node', None, 'NodeList', '/api/v1/nodes'),
    'services': ('CoreV1Api', 'list_service_for_all_namespaces', 'list_namespaced_service',
                 'ServiceList', '/api/v1/services'),
    'endpointslices': ('DiscoveryV1Api', 'list_endpoint_slice_for_all_namespaces',
                       'list_namespaced_endpoint_slice', 'EndpointSliceList',
                       '/apis/discovery.k8s.io/v1/endpointslices'),
}


class KubeError(Exception):
    """A failure to read the cluster; str() says what happened and what to do."""


def connection_argument_spec():
    """The connection options of the module, with kubernetes.core's env fallbacks."""
    from ansible.module_utils.basic import env_fallback
    spec = dict(
        # a path, or the content of a kubeconfig as a dict (AWX credentials, vaulted variables)
        kubeconfig=dict(type='raw'),
        context=dict(type='str'),
        host=dict(type='str'),
        api_key=dict(type='str', no_log=True),
        validate_certs=dict(type='bool', aliases=['verify_ssl']),
        ca_cert=dict(type='path', aliases=['ssl_ca_cert']),
        client_cert=dict(type='path', aliases=['cert_file']),
        client_key=dict(type='path', aliases=['key_file'], no_log=False),
        proxy=dict(type='str'),
        no_proxy=dict(type='str'),
        impersonate_user=dict(type='str'),
        impersonate_groups=dict(type='list', elements='str'),
    )
    for name, env in CONNECTION_ENV.items():
        spec[name]['fallback'] = (env_fallback, list(env))
    spec['proxy_headers'] = dict(type='dict', options=dict(
        basic_auth=dict(type='str', no_log=True), proxy_basic_auth=dict(type='str', no_log=True),
        user_agent=dict(type='str')))
    return spec


def from_environment(name, environ):
    """The value of the first of the option's environment variables that is set, or None."""
    for env in CONNECTION_ENV.get(name, ()):
        if environ.get(env):
            return environ[env]
    return None


def _in_cluster():
    return bool(os.environ.get('KUBERNETES_SERVICE_HOST')) and os.path.exists(SERVICE_ACCOUNT_TOKEN)


def _check_files(settings):
    """Name the option and the path of a file that is not there, before anything connects.

    Without this, a missing kubeconfig reads as "Invalid kube-config file. No configuration found."
    (or is silently skipped when host is set), and a missing CA file fails the first request
    without its path. A kubeconfig may be several paths joined by ":", as KUBECONFIG is: it is
    missing when none of them exists.
    """
    kubeconfig = settings.get('kubeconfig')
    if isinstance(kubeconfig, str) and kubeconfig:
        paths = [os.path.expanduser(p) for p in kubeconfig.split(os.pathsep) if p]
        if paths and not any(os.path.exists(p) for p in paths):
            raise KubeError('kubeconfig %s does not exist (option kubeconfig, or K8S_AUTH_KUBECONFIG)'
                            % ', '.join(paths))
    for option, what in (('ca_cert', 'CA certificate'), ('client_cert', 'client certificate'),
                         ('client_key', 'client key')):
        path = settings.get(option)
        if not isinstance(path, str) or not path:
            continue
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            problem = 'is not a file' if os.path.exists(path) else 'does not exist'
            raise KubeError('%s: the %s file %s %s (option %s, or %s)'
                            % (option, what, path, problem, option, CONNECTION_ENV[option][0]))
        if not os.access(path, os.R_OK):
            raise KubeError('%s: the %s file %s cannot be read (option %s, or %s)'
                            % (option, what, path, option, CONNECTION_ENV[option][0]))


def make_configuration(settings):
    """Build a kubernetes.client.Configuration from the connection settings.

    Order as in kubernetes.core: a kubeconfig (given, or the default one) or the
    in-cluster service account first, then explicit options override it.
    """
    config = kubernetes.client.Configuration()
    kubeconfig = settings.get('kubeconfig')
    if kubeconfig is not None and not isinstance(kubeconfig, (str, dict)):
        raise KubeError('kubeconfig must be the path of a kubeconfig file or its content as a dict, not %s'
                        % type(kubeconfig).__name__)
    _check_files(settings)
    explicit = kubeconfig or settings.get('context')
    try:
        if explicit or not settings.get('host'):
            if not explicit and _in_cluster():
                kubernetes.config.load_incluster_config(client_configuration=config)
            elif isinstance(kubeconfig, dict):
                kubernetes.config.load_kube_config_from_dict(
                    kubeconfig, context=settings.get('context'), client_configuration=config, persist_config=False)
            else:
                kubernetes.config.load_kube_config(
                    config_file=os.path.expanduser(kubeconfig) if kubeconfig else None,
                    context=settings.get('context'), client_configuration=config, persist_config=False)
    except Exception as exc:
        if not settings.get('host'):
            raise KubeError('cannot load the Kubernetes connection: %s. Set host and api_key, '
                            'a kubeconfig, or the K8S_AUTH_* environment variables.' % exc)
    if settings.get('host'):
        config.host = settings['host'].rstrip('/')
    if settings.get('api_key'):
        config.api_key = {'authorization': 'Bearer ' + settings['api_key']}
        config.api_key_prefix = {}
    if settings.get('validate_certs') is not None:
        config.verify_ssl = bool(settings['validate_certs'])
    for option, attribute in (('ca_cert', 'ssl_ca_cert'), ('client_cert', 'cert_file'),
                              ('client_key', 'key_file'), ('proxy', 'proxy'), ('no_proxy', 'no_proxy')):
        if settings.get(option):
            setattr(config, attribute, settings[option])
    headers = settings.get('proxy_headers') or {}
    if not isinstance(headers, dict) or set(headers) - set(PROXY_HEADERS):
        raise KubeError('proxy_headers takes %s only' % ', '.join(PROXY_HEADERS))
    if any(headers.values()):
        import urllib3
        config.proxy_headers = urllib3.util.make_headers(**dict((k, v) for k, v in headers.items() if v))
    # One attempt per request: a failed read stops the run, the next scheduled run retries.
    config.retries = 0
    return config


# ANSI escape sequences (CSI such as colours, OSC such as window titles and links) as a whole
_ESCAPES = re.compile(r'\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]')
API_TEXT_LIMIT = 300


def api_text(value, limit=API_TEXT_LIMIT):
    """Text an API server (or whatever answers in its place) sent, as a message may carry it.

    ANSI escape sequences go, every other control or format character (line breaks, bidi
    overrides) becomes a space, runs of spaces one, and text longer than limit is cut there
    with the cut marked: a proxy's 5 KB error page or a coloured log line stays readable.
    """
    if value is None:
        return ''
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'replace')
    text = _ESCAPES.sub('', value if isinstance(value, str) else str(value))
    text = ' '.join(''.join(' ' if unicodedata.category(c)[0] == 'C' else c for c in text).split())
    if len(text) > limit:
        text = '%s... [%d more characters cut]' % (text[:limit].rstrip(), len(text) - limit)
    return text


def _status_message(exc):
    """The message of a Kubernetes Status body, or the raw reason, made safe for a message (api_text)."""
    try:
        body = json.loads(exc.body)
        message = body.get('message') or body.get('reason') or exc.reason
    except (TypeError, ValueError, AttributeError):
        message = exc.reason
    return api_text(message) or 'no message'


def _explain_api_error(exc, resource, server):
    status = exc.status
    message = _status_message(exc)
    if status == 401:
        return ('the API server %s rejected the credentials (401 Unauthorized): the token or '
                'client certificate is invalid or expired; check api_key, client_cert or the '
                'kubeconfig user' % server)
    if status == 403:
        if RESOURCES.get(resource, (None, None, None))[2] is None:
            scope = 'at the cluster scope (%s are cluster-scoped: a ClusterRole and a ClusterRoleBinding)' % resource
        else:
            scope = 'at the cluster scope (or in each selected namespace)'
        return ('permission denied listing %s (403 Forbidden): %s. The account needs "list" on %s %s.'
                % (resource, message, resource, scope))
    if status == 404:
        return ('listing %s: 404 Not Found (%s); is host %s a Kubernetes API server?'
                % (resource, message, server))
    return 'listing %s: the API server answered %s %s: %s' % (resource, status, api_text(exc.reason, 60), message)


def _explain_transport_error(exc, resource, server, timeout):
    # urllib3 wraps the cause in MaxRetryError; the cause is what the operator needs.
    cause = getattr(exc, 'reason', None) if type(exc).__name__ == 'MaxRetryError' else None
    text = '%s: %s' % (type(cause or exc).__name__, api_text(cause or exc))
    lowered = text.lower()
    if 'timeout' in lowered or 'timed out' in lowered:
        return ('listing %s: the API server %s did not answer within %s seconds (api_timeout)'
                % (resource, server, timeout))
    if 'certificate' in lowered or 'ssl' in lowered:
        return ('listing %s: TLS failed with %s: %s. Check ca_cert, or validate_certs.'
                % (resource, server, text))
    if 'refused' in lowered or 'newconnectionerror' in lowered or 'failed to establish' in lowered:
        return 'listing %s: cannot connect to the API server %s: %s' % (resource, server, text)
    if 'incompleteread' in lowered:
        return ('listing %s: the answer from %s was cut short before its end (%s); nothing was '
                'changed' % (resource, server, text))
    if 'remotedisconnected' in lowered or 'aborted' in lowered or 'reset' in lowered:
        return ('listing %s: the API server %s closed the connection without answering (%s)'
                % (resource, server, text))
    return 'listing %s from %s failed: %s' % (resource, server, text)


def parse_json_body(data, what, read=None, projected=True):
    """The body decoded by read (a _fields.Reader; None: whole, with json.loads), the garbage collector paused."""
    if read is not None:
        try:
            return read(data, projected)
        except ValueError as exc:
            raise _not_json(what, exc)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _not_json(what, exc)
    finally:
        if was_enabled:
            gc.enable()


def _not_json(what, exc):
    return KubeError('%s: the body is not valid JSON (%s); the response was cut short or '
                     'is not from a Kubernetes API server' % (what, exc))


def impersonation(settings):
    """(user, groups) to impersonate, or None; groups from a list or a comma-separated string."""
    user, groups = settings.get('impersonate_user') or None, settings.get('impersonate_groups') or []
    if isinstance(groups, str):
        groups = [group.strip() for group in groups.split(',') if group.strip()]
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise KubeError('impersonate_groups must be a list of group names')
    if groups and not user:
        raise KubeError('impersonate_groups needs impersonate_user: the API server impersonates groups of a user')
    for value in [user or ''] + groups:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise KubeError('impersonate_user and impersonate_groups may not hold control characters')
    return (user, groups) if user else None


def _impersonating(request, user, groups):
    """The client's request function, sending the impersonation headers: a group header each.

    The client's own header handling keeps one value per name, so the headers are added here,
    where they reach urllib3 as they are.
    """
    import urllib3

    def send(method, url, *args, **kwargs):
        headers = urllib3.HTTPHeaderDict(kwargs.pop('headers', None) or {})
        headers['Impersonate-User'] = user
        for group in groups:
            headers.add('Impersonate-Group', group)
        return request(method, url, *args, headers=headers, **kwargs)
    return send


class KubeClient:
    """Lists resources as raw JSON pages, reducing each item as soon as it is read."""

    def __init__(self, settings, timeout=30, page_size=500):
        if not HAS_KUBERNETES:
            raise KubeError('the kubernetes Python client is not installed')
        self.configuration = make_configuration(settings)
        self.server = self.configuration.host
        self.timeout = timeout
        self.page_size = page_size
        self.api_client = kubernetes.client.ApiClient(self.configuration)
        acting = impersonation(settings)
        if acting:
            rest = self.api_client.rest_client
            rest.request = _impersonating(rest.request, *acting)

    def close(self):
        if hasattr(self.api_client, 'close'):
            self.api_client.close()

    def _get(self, resource, namespace, query):
        """The raw body of one list request; a non-2xx answer raises _HTTPError."""
        api_class, cluster_method, namespaced_method, kind, path = RESOURCES[resource]
        if hasattr(self.api_client, 'param_serialize'):
            # A plain GET: the generated API classes cost a third of a second to import.
            path_params = None
            if namespace:
                path = path.replace('/%s' % resource, '/namespaces/{namespace}/%s' % resource)
                path_params = {'namespace': namespace}
            request = self.api_client.param_serialize(
                method='GET', resource_path=path, path_params=path_params, query_params=query,
                header_params={'Accept': 'application/json'}, auth_settings=['BearerToken'])
            response = self.api_client.call_api(*request, _request_timeout=self.timeout)
            data = response.read()
            if not 200 <= response.status <= 299:
                raise _HTTPError(response.status, response.reason, data)
            return data
        # Older clients: the generated list methods, returning the raw response.
        api = getattr(kubernetes.client, api_class)(self.api_client)
        kwargs = dict(_preload_content=False, _request_timeout=self.timeout)
        names = {'limit': 'limit', 'continue': '_continue', 'labelSelector': 'label_selector'}
        kwargs.update((names[key], value) for key, value in query)
        if namespace:
            return getattr(api, namespaced_method)(namespace, **kwargs).data
        return getattr(api, cluster_method)(**kwargs).data

    def read_secret(self, namespace, name):
        """One Secret object, or None when it does not exist.

        Raises SecretForbidden on 403 (that service goes, the run goes on) and KubeError on
        any other failure. The body never reaches a message: it holds the private key.
        """
        what = 'reading Secret %s/%s' % (namespace, name)
        try:
            if hasattr(self.api_client, 'param_serialize'):
                request = self.api_client.param_serialize(
                    method='GET', resource_path='/api/v1/namespaces/{namespace}/secrets/{name}',
                    path_params={'namespace': namespace, 'name': name},
                    header_params={'Accept': 'application/json'}, auth_settings=['BearerToken'])
                response = self.api_client.call_api(*request, _request_timeout=self.timeout)
                data = response.read()
                if not 200 <= response.status <= 299:
                    raise _HTTPError(response.status, response.reason, data)
            else:
                api = kubernetes.client.CoreV1Api(self.api_client)
                data = api.read_namespaced_secret(name, namespace, _preload_content=False,
                                                  _request_timeout=self.timeout).data
        except (ApiException, _HTTPError) as exc:
            if exc.status == 404:
                return None
            if exc.status == 403:
                raise SecretForbidden('permission denied reading Secret %s/%s (403 Forbidden): the account '
                                      'needs "get" on secrets in namespace %s' % (namespace, name, namespace))
            raise KubeError('%s: the API server answered %s %s: %s'
                            % (what, exc.status, api_text(exc.reason, 60), _status_message(exc)))
        except Exception as exc:
            raise KubeError(_explain_transport_error(exc, 'Secret %s/%s' % (namespace, name),
                                                     self.server, self.timeout).replace('listing ', 'reading ', 1))
        secret = parse_json_body(data, what)
        if not isinstance(secret, dict) or secret.get('kind') != 'Secret':
            raise KubeError('%s: the answer is not a Secret' % what)
        return secret

    def write(self, method, path, path_params, body, content_type='application/json', query=None):
        """(HTTP status, parsed body) of one write; an answer of any status is returned, not raised.

        Raises KubeError only when no answer came (connection, TLS, timeout).
        """
        headers = {'Accept': 'application/json', 'Content-Type': content_type}
        try:
            if hasattr(self.api_client, 'param_serialize'):
                request = self.api_client.param_serialize(
                    method=method, resource_path=path, path_params=path_params, query_params=query or [],
                    header_params=headers, body=body, auth_settings=['BearerToken'])
                response = self.api_client.call_api(*request, _request_timeout=self.timeout)
                status, raw = response.status, response.read()
            else:
                answer = self.api_client.call_api(
                    path, method, path_params, query or [], headers, body=body, auth_settings=['BearerToken'],
                    _preload_content=False, _return_http_data_only=False, _request_timeout=self.timeout)
                status, raw = answer[1], answer[0].data
        except ApiException as exc:
            status, raw = exc.status, exc.body
        except Exception as exc:
            raise KubeError(_explain_transport_error(exc, path, self.server, self.timeout).replace(
                'listing ', 'writing ', 1))
        try:
            parsed = json.loads(raw) if raw else {}
        except (TypeError, ValueError):
            parsed = {}
        return status, parsed if isinstance(parsed, dict) else {}

    def _fetch(self, resource, namespace, selector, token):
        """The raw body of one list page; KubeError (or _Expired on 410) when there is none."""
        query = [('limit', self.page_size)]
        if token:
            query.append(('continue', token))
        if selector:
            query.append(('labelSelector', selector))
        try:
            return self._get(resource, namespace, query)
        except (ApiException, _HTTPError) as exc:
            if exc.status == 410:
                raise _Expired(_status_message(exc))
            raise KubeError(_explain_api_error(exc, resource, self.server))
        except KubeError:
            raise
        except Exception as exc:
            raise KubeError(_explain_transport_error(exc, resource, self.server, self.timeout))

    @staticmethod
    def _decode(data, resource, whole, projected):
        kind = RESOURCES[resource][3]
        what = 'listing %s' % resource
        page = parse_json_body(data, what, _fields.reader(resource, whole), projected)
        if not isinstance(page, dict) or page.get('kind') != kind or not isinstance(page.get('items'), list):
            raise KubeError('%s: the answer is not a %s (kind %s)' % (
                what, kind, api_text(repr(page.get('kind')) if isinstance(page, dict) else type(page).__name__, 60)))
        return page

    def list(self, resource, reduce, namespace=None, selector=None, whole=False, projected=True):
        """Every item of a list, each passed through reduce() page by page; None results dropped.

        Items hold only the fields _fields declares for the resource; whole=True keeps every field
        (a JMESPath filter may read any). projected=False is for a reduce() that itself reads only
        the declared fields and keeps none of the item: without msgspec it gets the item as
        json.loads read it, not a copy of its declared fields. A 410 on a continue token (the
        snapshot was compacted) restarts the list once. Returns (items, resourceVersion).
        """
        for attempt in (1, 2):
            try:
                return self._list_once(resource, reduce, namespace, selector, whole, projected)
            except _Expired as exc:
                if attempt == 2:
                    raise KubeError('listing %s: the list expired twice while paging (410 Gone): '
                                    '%s; the cluster changes faster than it can be read, '
                                    'raise the page size' % (resource, exc))
        raise AssertionError('unreachable')

    def _list_once(self, resource, reduce, namespace, selector, whole, projected):
        items, version = [], None
        # remainingItemCount promises how many items the later pages hold
        count, promised = 0, None
        data, ahead = self._fetch(resource, namespace, selector, None), None
        while True:
            # The next page travels while this one is decoded: its continue token is at the front.
            hint = continue_hint(data)
            ahead = _Ahead(self._fetch, resource, namespace, selector, hint) if hint else None
            page = self._decode(data, resource, whole, projected)
            data = None
            metadata = page.get('metadata') or {}
            version = version or metadata.get('resourceVersion')
            for item in page['items']:
                reduced = reduce(item)
                if reduced is not None:
                    items.append(reduced)
            count += len(page['items'])
            if isinstance(metadata.get('remainingItemCount'), int):
                promised = count + metadata['remainingItemCount']
            token = metadata.get('continue')
            page = None
            if not token:
                break
            data = ahead.result() if ahead is not None and ahead.token == token else None
            if data is None:
                if ahead is not None:
                    ahead.wait()  # one request at a time
                data = self._fetch(resource, namespace, selector, token)
        if promised is not None and count < promised:
            raise KubeError('listing %s: the list ended after %d of %d items; the API server or a '
                            'proxy cut it short' % (resource, count, promised))
        return items, version


# The front of a list answer as API servers write it: kind, apiVersion, then the list's metadata.
_LIST_FRONT = re.compile(br'\A\s*\{\s*"kind"\s*:\s*"[A-Za-z]{1,64}"\s*,\s*"apiVersion"\s*:\s*"[A-Za-z0-9./-]{1,64}"\s*,'
                         br'\s*"metadata"\s*:\s*')
_FRONT_BYTES = 8192


def continue_hint(data):
    """The continue token at the front of a raw list page, or None; read before the page is.

    Only a hint: the page's own metadata, once decoded, says which page comes next.
    """
    found = _LIST_FRONT.match(data) if isinstance(data, bytes) else None
    if not found:
        return None
    try:
        metadata = json.JSONDecoder().raw_decode(data[found.end():found.end() + _FRONT_BYTES].decode('utf-8', 'replace'))[0]
    except ValueError:
        return None
    token = metadata.get('continue') if isinstance(metadata, dict) else None
    return token if isinstance(token, str) and token else None


class _Ahead:
    """One list page asked for in a thread of its own, while the previous one is decoded."""

    def __init__(self, fetch, resource, namespace, selector, token):
        self.token = token
        self._data = self._error = None
        # a daemon: a list that fails meanwhile does not wait for it
        self._thread = threading.Thread(target=self._run, args=(fetch, resource, namespace, selector, token),
                                        name='portico-list-%s' % resource, daemon=True)
        self._thread.start()

    def _run(self, fetch, *args):
        try:
            self._data = fetch(*args)
        except Exception as exc:  # pylint: disable=broad-except
            self._error = exc

    def wait(self):
        self._thread.join()

    def result(self):
        """The page's raw body; raises what fetching it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._data


class SecretForbidden(KubeError):
    """The account may not read a Secret that a service names."""


class _HTTPError(Exception):
    """A non-2xx answer, with the attributes of the client's ApiException that the messages read."""

    def __init__(self, status, reason, body):
        super(_HTTPError, self).__init__('%s %s' % (status, reason))
        self.status, self.reason, self.body = status, reason, body


class _Expired(Exception):
    """A continue token older than the last compaction (410 Gone)."""
