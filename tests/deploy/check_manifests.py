#!/usr/bin/python3
"""The offline check of hvmm's Kubernetes manifests (tests/deploy/README.md).

    check_manifests.py --schemas DIR [--mutate NAME] FILE...

FILEs are applied in order, as `kubectl apply -f` would: an object named again (tls.yaml's
hvmmd-config) replaces the earlier one. Every object is validated against the Kubernetes JSON
schema of its kind, vendored in DIR and strict (an unknown field is an error, as is a value of
the wrong type); a kind without a schema is an error. Then hvmm's own checks: the DaemonSet
reads the ConfigMap's hvmmd.conf, the socket's directory is the node's, /dev/kvm is the
node's, the probes ask the socket the configuration opens (or the TCP port it listens on), and
with a Service, that it reaches the TLS port of the configuration with its certificate
mounted. --mutate applies one of MUTATIONS first (the negative tests).

Exit 0: passed; 1: failed, one line per problem; 77: skipped (python3-yaml or
python3-jsonschema missing, saying so).
"""

import argparse
import copy
import json
import os
import re
import sys

try:
    import jsonschema
    import yaml
except ImportError as missing:
    print(f"SKIPPED: {missing.name} is missing (deploy/install-deps.sh installs python3-yaml and "
          "python3-jsonschema)")
    sys.exit(77)

NAMESPACE = "hvmm"
CONFIG_KEY = "hvmmd.conf"


def load(files):
    """The objects of `files` in apply order, a later one of the same kind/name replacing."""
    objects = {}
    for path in files:
        with open(path, encoding="utf-8") as stream:
            for number, doc in enumerate(yaml.safe_load_all(stream)):
                if doc is None:
                    continue
                if not isinstance(doc, dict):
                    raise SystemExit(f"{path}: document {number} is not a mapping")
                name = (doc.get("metadata") or {}).get("name", f"#{number}")
                objects[(doc.get("kind"), name)] = (path, doc)
    return objects


def schema_file(doc):
    """The vendored schema's file name for `doc`'s apiVersion and kind (yannh's naming)."""
    kind = str(doc.get("kind", "")).lower()
    group_version = str(doc.get("apiVersion", ""))
    if "/" in group_version:
        group, version = group_version.split("/", 1)
        return f"{kind}-{group.split('.')[0]}-{version}.json"
    return f"{kind}-{group_version}.json"


def check_schemas(objects, schemas):
    problems = []
    for (kind, name), (path, doc) in objects.items():
        schema_path = os.path.join(schemas, schema_file(doc))
        if not os.path.exists(schema_path):
            problems.append(f"{path}: {kind} {name}: no schema for apiVersion "
                            f"'{doc.get('apiVersion')}' kind '{kind}' ({schema_file(doc)})")
            continue
        with open(schema_path, encoding="utf-8") as stream:
            validator = jsonschema.Draft7Validator(json.load(stream))
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(part) for part in error.absolute_path) or "(top)"
            problems.append(f"{path}: {kind} {name}: {where}: {error.message}")
    return problems


def parse_config(text):
    """hvmmd.conf's `key = value` lines (TOML-like: strings quoted, comments with #)."""
    config = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.strip().startswith("#") else ""
        if not line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        config[key.strip()] = value
    return config


def find(objects, kind):
    return [doc for (k, _), (_, doc) in objects.items() if k == kind]


def mounts_by_path(container, volumes):
    """mountPath -> the volume mounted there."""
    result = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        if volume is not None:
            result[mount.get("mountPath")] = volume
    return result


def mount_of(path, mounts):
    """The (mountPath, volume) whose directory holds `path`, the deepest one."""
    best = None
    for mount_path, volume in mounts.items():
        if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
            if best is None or len(mount_path) > len(best[0]):
                best = (mount_path, volume)
    return best


def probe_problems(container, config, what):
    probe = container.get(what)
    if not probe:
        return [f"container {container.get('name')}: no {what}"]
    if "exec" in probe:
        command = probe["exec"].get("command") or []
        if "health" not in command:
            return [f"{what}: the exec probe does not run `hvmm health` ({command})"]
        socket = command[command.index("--socket") + 1] if "--socket" in command[:-1] else None
        if socket != config.get("socket"):
            return [f"{what}: the probe asks socket '{socket}', the configuration opens "
                    f"'{config.get('socket')}'"]
        return []
    for kind in ("grpc", "tcpSocket"):
        if kind in probe:
            port = probe[kind].get("port")
            listen = config.get("listen-tcp", "")
            if not listen or str(port) != listen.rsplit(":", 1)[-1]:
                return [f"{what}: the probe's port {port} is not a port the configuration opens "
                        f"(listen-tcp '{listen}')"]
            return []
    return [f"{what}: neither an exec probe of `hvmm health` nor a gRPC probe"]


def check_daemonset(objects, daemonset):
    problems = []
    spec = daemonset["spec"]["template"]["spec"]
    containers = [c for c in spec.get("containers") or [] if c.get("name") == "hvmmd"]
    if not containers:
        return ["DaemonSet: no container named hvmmd"]
    container = containers[0]
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    mounts = mounts_by_path(container, volumes)

    # The configuration: --config names a file of a mounted ConfigMap that exists.
    args = (container.get("command") or []) + (container.get("args") or [])
    if "--config" not in args[:-1]:
        return problems + ["DaemonSet: hvmmd is not given --config"]
    config_path = args[args.index("--config") + 1]
    found = mount_of(config_path, mounts)
    if not found or "configMap" not in found[1]:
        return problems + [f"DaemonSet: --config {config_path} is not in a mounted ConfigMap"]
    config_map_name = found[1]["configMap"].get("name")
    config_maps = [c for c in find(objects, "ConfigMap") if c["metadata"]["name"] == config_map_name]
    key = os.path.relpath(config_path, found[0])
    if not config_maps or key not in (config_maps[0].get("data") or {}):
        return problems + [f"DaemonSet: ConfigMap {config_map_name} with key {key} is missing"]
    config = parse_config(config_maps[0]["data"][key])

    # The socket's directory is the node's /run/hvmm (node-local clients), at the same path.
    socket = config.get("socket", "/run/hvmm/hvmmd.sock")
    found = mount_of(socket, mounts)
    socket_dir = os.path.dirname(socket)
    if not found or "hostPath" not in found[1]:
        problems.append(f"socket {socket}: its directory is not a hostPath volume")
    elif found[1]["hostPath"].get("path") != found[0] or found[0] != socket_dir:
        problems.append(f"socket {socket}: mounted from the node's "
                        f"{found[1]['hostPath'].get('path')} at {found[0]}, not {socket_dir} at "
                        f"{socket_dir}")

    # Plaintext TCP would serve the whole API, unauthenticated, to the pod network.
    if config.get("insecure-tcp") == "true":
        problems.append("insecure-tcp: the API would be served without TLS on the pod network")

    state_dir = config.get("state-dir", "/var/lib/hvmm")
    if not mount_of(state_dir + "/x", mounts):
        problems.append(f"state-dir {state_dir}: not a mounted volume")

    # /dev/kvm: the node's character device.
    kvm = mounts.get("/dev/kvm")
    if not kvm or (kvm.get("hostPath") or {}).get("path") != "/dev/kvm":
        problems.append("/dev/kvm: not mounted from the node's /dev/kvm")
    elif kvm["hostPath"].get("type") != "CharDevice":
        problems.append("/dev/kvm: the hostPath volume's type is not CharDevice")

    for what in ("readinessProbe", "livenessProbe"):
        problems += probe_problems(container, config, what)
    problems += check_tls(objects, daemonset, container, config, mounts)
    return problems


def container_port(container, target):
    for port in container.get("ports") or []:
        if target in (port.get("name"), port.get("containerPort")):
            return port.get("containerPort")
    return None


def check_tls(objects, daemonset, container, config, mounts):
    """A Service must reach the TCP port the configuration opens, with TLS files mounted."""
    problems = []
    labels = daemonset["spec"]["template"]["metadata"].get("labels") or {}
    for service in find(objects, "Service"):
        name = service["metadata"]["name"]
        selector = service["spec"].get("selector") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"Service {name}: its selector {selector} does not select hvmmd's pods")
        listen = config.get("listen-tcp", "")
        if not listen:
            problems.append(f"Service {name}: the configuration has no listen-tcp")
            continue
        for port in service["spec"].get("ports") or []:
            target = container_port(container, port.get("targetPort", port.get("port")))
            if str(target) != listen.rsplit(":", 1)[-1]:
                problems.append(f"Service {name}: port {port.get('name')} reaches container port "
                                f"{target}, hvmmd listens on '{listen}'")
        if config.get("insecure-tcp") == "true" or not config.get("tls-cert"):
            problems.append(f"Service {name}: the TCP endpoint is not TLS (tls-cert unset)")
        for key in ("tls-cert", "tls-key", "tls-ca"):
            path = config.get(key)
            if path and not (mount_of(path, mounts) and "secret" in mount_of(path, mounts)[1]):
                problems.append(f"{key} {path}: not in a mounted Secret")
    return problems


def check_hvmm(objects):
    problems = []
    for (kind, name), (path, doc) in objects.items():
        namespace = (doc.get("metadata") or {}).get("namespace")
        if kind != "Namespace" and namespace != NAMESPACE:
            problems.append(f"{path}: {kind} {name}: namespace '{namespace}', not '{NAMESPACE}'")
    daemonsets = find(objects, "DaemonSet")
    if len(daemonsets) != 1:
        return problems + [f"expected one DaemonSet, found {len(daemonsets)}"]
    account = daemonsets[0]["spec"]["template"]["spec"].get("serviceAccountName")
    if account and not any(a["metadata"]["name"] == account for a in find(objects, "ServiceAccount")):
        problems.append(f"DaemonSet: serviceAccountName {account} is not defined")
    return problems + check_daemonset(objects, daemonsets[0])


def pod_spec(objects):
    return find(objects, "DaemonSet")[0]["spec"]["template"]["spec"]


def hvmmd_container(objects):
    return pod_spec(objects)["containers"][0]


def set_config(objects, key, value):
    for config_map in find(objects, "ConfigMap"):
        text = config_map["data"][CONFIG_KEY]
        config_map["data"][CONFIG_KEY] = re.sub(rf'(?m)^{key} = .*$', f'{key} = "{value}"', text)


def drop_mount(objects, path):
    container = hvmmd_container(objects)
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["mountPath"] != path]


# The negative tests' broken copies: each must fail the check with the message expected of it.
MUTATIONS = {
    "unknown-field": lambda o: pod_spec(o).update({"hostNetwrok": True}),
    "wrong-type": lambda o: hvmmd_container(o)["ports"][0].update({"containerPort": "7443"}),
    "wrong-type-probe": lambda o: hvmmd_container(o)["readinessProbe"].update(
        {"periodSeconds": "10s"}),
    "unknown-kind": lambda o: o.update({("Deployment", "x"): ("mutation", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x",
                                                                     "namespace": NAMESPACE}})}),
    "socket-elsewhere": lambda o: set_config(o, "socket", "/run/hvmmd/hvmmd.sock"),
    "no-kvm": lambda o: drop_mount(o, "/dev/kvm"),
    "probe-socket": lambda o: hvmmd_container(o)["livenessProbe"]["exec"].update(
        {"command": ["/usr/bin/hvmm", "--socket", "/tmp/hvmmd.sock", "health"]}),
    "probe-port": lambda o: hvmmd_container(o).update(
        {"readinessProbe": {"grpc": {"port": 7444}}}),
    "insecure-tcp": lambda o: [c["data"].update({CONFIG_KEY: c["data"][CONFIG_KEY] + (
        'listen-tcp = "0.0.0.0:7443"\ninsecure-tcp = true\n')}) for c in find(o, "ConfigMap")],
    "service-port": lambda o: find(o, "Service")[0]["spec"]["ports"][0].update(
        {"targetPort": 7444}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schemas", required=True)
    parser.add_argument("--mutate", choices=sorted(MUTATIONS))
    parser.add_argument("files", nargs="+")
    options = parser.parse_args()
    objects = load(options.files)
    if options.mutate:
        objects = copy.deepcopy(objects)
        MUTATIONS[options.mutate](objects)
        print(f"mutation: {options.mutate}")
    problems = check_schemas(objects, options.schemas)
    if not problems:
        problems = check_hvmm(objects)
    kinds = ", ".join(f"{k} {n}" for k, n in objects)
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        return 1
    print(f"PASSED: {len(objects)} objects ({kinds}) against {options.schemas}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
