"""The deploy files (deploy/: Dockerfiles, compose, Kubernetes manifests) agree with
the code that reads them: no container engine runs here, so this is what catches a
manifest naming a variable the server does not read, a probe on a port nothing
listens on, or a secret that does not exist.

Checked:
- every SIGN_SERVICE_* / SIGN_GATEWAY_* variable a deploy file sets is read by that
  server's configuration code (a string literal there), and compose's Redis is where
  the gateway looks for it;
- every port a container exposes, probes or a Service targets is a port the
  container's own environment makes it listen on (SIGN_SERVICE_PORT, the port of
  SIGN_SERVICE_ADMIN_LISTEN, SIGN_GATEWAY_PORT), in the Dockerfiles, compose and
  Kubernetes alike;
- the gRPC probe names the service the cosigner reports in grpc.health.v1;
- every Secret a manifest references is described in secrets.example.yaml, and every
  Service selects pods of a workload in the same file;
- the edge gateway's wrangler environments repeat the Durable Object bindings and the
  variables (wrangler does not inherit them), and the Worker reads every variable.
"""

import pathlib
import re
import tomllib
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# The configuration code of each server: the variables it reads are string literals.
CONFIG_CODE = {
    "sign-service": [
        "sign-service/src/config.rs",
        "sign-service/src/main.rs",
    ],
    "sign-gateway": [
        "crates/sign-gateway/src/config.rs",
        "crates/sign-gateway/src/main.rs",
    ],
}
VAR = re.compile(r"\b((?:SIGN_SERVICE|SIGN_GATEWAY)_[A-Z0-9_]+)\b")


def read_vars(server):
    text = "".join((ROOT / p).read_text() for p in CONFIG_CODE[server])
    return set(re.findall(r'"((?:SIGN_SERVICE|SIGN_GATEWAY)_[A-Z0-9_]+)"', text))


def server_of(name):
    """The server a container, service or image name is."""
    for s in CONFIG_CODE:
        if s in name:
            return s
    raise AssertionError(f"{name}: which server is it?")


def listen_ports(env):
    """The ports a server listens on, from its environment (name -> value)."""
    ports = set()
    for key in ("SIGN_SERVICE_PORT", "SIGN_GATEWAY_PORT"):
        if key in env:
            ports.add(int(env[key]))
    if "SIGN_SERVICE_ADMIN_LISTEN" in env:
        ports.add(int(str(env["SIGN_SERVICE_ADMIN_LISTEN"]).rsplit(":", 1)[1]))
    return ports


def k8s_docs():
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def grpc_service_name():
    text = (ROOT / "sign-service/src/health.rs").read_text()
    m = re.search(r'pub const GRPC_SERVICE: &str = "([^"]+)"', text)
    assert m, "GRPC_SERVICE not found in sign-service/src/health.rs"
    return m.group(1)


class Dockerfiles(unittest.TestCase):
    def test_variables_are_read_and_exposed_ports_are_listened_on(self):
        files = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
        self.assertEqual(len(files), 2, files)
        for f in files:
            server = server_of(f.name)
            text = f.read_text()
            # ENV lines (with continuations) of the final stage.
            final = text.rsplit("\nFROM ", 1)[1]
            env_block = re.search(r"\nENV ((?:.*\\\n)*.*)", final)
            self.assertIsNotNone(env_block, f"{f.name}: no ENV")
            env = dict(re.findall(r"([A-Z0-9_]+)=(\S+)", env_block.group(1)))
            unknown = set(env) - read_vars(server)
            self.assertFalse(unknown, f"{f.name}: {server} does not read {unknown}")
            exposed = {int(p) for p in re.findall(r"\nEXPOSE ([0-9 ]+)", final)[0].split()}
            self.assertEqual(exposed, listen_ports(env), f"{f.name}: EXPOSE vs ENV")
            self.assertRegex(final, r"\nUSER [1-9][0-9]*", f"{f.name}: runs as root")


class Compose(unittest.TestCase):
    def test_services_variables_ports_and_healthchecks(self):
        doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
        services = doc["services"]
        self.assertEqual(set(services), {"sign-service", "sign-gateway", "redis", "postgres"})
        # Redis (an image of its own, for the gateway's rooms) only behind its profile,
        # and where the gateway looks for it.
        self.assertEqual(services["redis"]["profiles"], ["redis"])
        # PostgreSQL (the cosigner's store) likewise, its password a secret the cosigner
        # shares; the cosigner's URL comes from the operator's .env (empty: redb).
        pg = services["postgres"]
        self.assertEqual(pg["profiles"], ["postgres"])
        self.assertEqual(pg["environment"]["POSTGRES_PASSWORD_FILE"], "/run/secrets/pg-password")
        self.assertIn("pg-password", pg["secrets"])
        self.assertIn("pg-password", services["sign-service"]["secrets"])
        self.assertIn("pg-password", doc["secrets"])
        redis_url = services["sign-gateway"]["environment"]["SIGN_GATEWAY_REDIS_URL"]
        self.assertRegex(redis_url, r"^redis://redis:6379/")
        for name, svc in services.items():
            if name in ("redis", "postgres"):
                continue
            server = server_of(name)
            env = {k: str(v) for k, v in svc["environment"].items()}
            # A cosigner also reads the gateway's access-secret variable (it issues
            # the room tokens): that name is in its config code too.
            unknown = set(env) - read_vars(server)
            self.assertFalse(unknown, f"compose {name}: {server} does not read {unknown}")
            listening = listen_ports(env)
            for mapping in svc["ports"]:
                container = int(str(mapping).rsplit(":", 1)[1])
                self.assertIn(container, listening, f"compose {name}: port {mapping}")
            probe = " ".join(svc["healthcheck"]["test"])
            probed = {int(p) for p in re.findall(r"/dev/tcp/127\.0\.0\.1/(\d+)", probe)}
            self.assertTrue(probed and probed <= listening, f"compose {name}: {probe}")
            for secret in svc.get("secrets", []):
                self.assertIn(secret, doc["secrets"], f"compose {name}")
            files = [e for e in env.values() if e.startswith("/run/secrets/")]
            for f in files:
                self.assertIn(f.removeprefix("/run/secrets/"), svc.get("secrets", []))
        gateway_url = services["sign-service"]["environment"]["SIGN_SERVICE_GATEWAY_URL"]
        port = services["sign-gateway"]["environment"]["SIGN_GATEWAY_PORT"]
        self.assertEqual(gateway_url, f"http://sign-gateway:{port}")


class Kubernetes(unittest.TestCase):
    def setUp(self):
        self.docs = list(k8s_docs())

    def workloads(self):
        for f, d in self.docs:
            if d["kind"] in ("Deployment", "StatefulSet"):
                yield f, d

    def test_variables_ports_and_probes_of_every_container(self):
        grpc_name = grpc_service_name()
        seen = 0
        for f, d in self.workloads():
            spec = d["spec"]["template"]["spec"]
            self.assertTrue(spec["securityContext"]["runAsNonRoot"], f)
            for c in spec["containers"]:
                seen += 1
                server = server_of(c["name"])
                env = {e["name"]: e.get("value") for e in c["env"]}
                unknown = set(env) - read_vars(server)
                self.assertFalse(unknown, f"{f} {c['name']}: {server} does not read {unknown}")
                listening = listen_ports(env)
                ports = {p["containerPort"] for p in c["ports"]}
                self.assertEqual(ports, listening, f"{f} {c['name']}: containerPort vs env")
                for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                    probe = c.get(kind)
                    if not probe:
                        continue
                    if "httpGet" in probe:
                        self.assertIn(probe["httpGet"]["port"], listening, f"{f} {kind}")
                        self.assertIn(probe["httpGet"]["path"], ("/healthz", "/readyz"))
                    if "grpc" in probe:
                        self.assertEqual(probe["grpc"]["port"], int(env["SIGN_SERVICE_PORT"]))
                        self.assertEqual(probe["grpc"].get("service"), grpc_name, f)
                self.assertIn("readinessProbe", c, f)
                self.assertIn("livenessProbe", c, f)
        self.assertEqual(seen, 2)

    def test_services_target_listening_ports_and_secrets_exist(self):
        listening = {}
        for f, d in self.workloads():
            app = d["spec"]["selector"]["matchLabels"]["app"]
            for c in d["spec"]["template"]["spec"]["containers"]:
                env = {e["name"]: e.get("value") for e in c["env"]}
                listening.setdefault(app, set()).update(listen_ports(env))
        secrets = {
            d["metadata"]["name"]: set(d.get("stringData", {}))
            for f, d in self.docs
            if d["kind"] == "Secret"
        }
        for f, d in self.docs:
            if d["kind"] == "Service":
                app = d["spec"]["selector"]["app"]
                self.assertIn(app, listening, f"{f}: Service selects no workload")
                for p in d["spec"]["ports"]:
                    self.assertIn(p["targetPort"], listening[app], f"{f} {d['metadata']['name']}")
            if d["kind"] == "PodDisruptionBudget":
                self.assertIn(d["spec"]["selector"]["matchLabels"]["app"], listening, f)
        for f, d in self.workloads():
            spec = d["spec"]["template"]["spec"]
            for c in spec["containers"]:
                for e in c["env"]:
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        self.assertIn(ref["key"], secrets.get(ref["name"], set()), f"{f}: {ref}")
            for v in spec.get("volumes", []):
                if "secret" in v:
                    self.assertIn(v["secret"]["secretName"], secrets, f)


class Wrangler(unittest.TestCase):
    def test_environments_repeat_bindings_and_variables_the_worker_reads(self):
        cfg = tomllib.loads((ROOT / "edge-gateway/wrangler.toml").read_text())
        code = "\n".join(p.read_text() for p in sorted((ROOT / "edge-gateway/src").glob("*.rs")))
        read = set(re.findall(r'env_(?:str|num)\(\s*env,\s*"([A-Z_]+)"', code))
        self.assertFalse(set(cfg["vars"]) - read, "the Worker does not read these vars")
        bindings = {(b["name"], b["class_name"]) for b in cfg["durable_objects"]["bindings"]}
        # Every Durable Object binding the code uses is declared, and only those.
        used = set(re.findall(r'durable_object\(\s*"([A-Z_]+)"', code))
        self.assertEqual({n for n, _ in bindings}, used, "bindings vs durable_object(...) calls")
        self.assertEqual(set(cfg["env"]), {"staging", "production"})
        for env, e in cfg["env"].items():
            got = {(b["name"], b["class_name"]) for b in e["durable_objects"]["bindings"]}
            self.assertEqual(got, bindings, env)
            self.assertEqual(set(e["vars"]), set(cfg["vars"]), env)
            self.assertNotEqual(e["vars"]["CORS_ORIGINS"], "*", env)
        deploy = (ROOT / "scripts/gateway-edge-deploy.sh").read_text()
        self.assertIn("ACCESS_SECRET", deploy)


if __name__ == "__main__":
    unittest.main()
