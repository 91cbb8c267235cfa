#!/usr/bin/env python3
"""Checks compose.yaml (and compose.local.yaml) by parsing them: podman-compose 1.0.3 has no `config` command, and the
official images (postgres, redis, apache/kafka, prom/prometheus, grafana/grafana) cannot be pulled here, so what they
would be given is checked instead: every service's image, ports, volumes, environment and dependencies.

    python3 deploy/tests/test_compose.py      (run by .ci/run through scripts/deploy-test.sh)
"""
import os
import re
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name):
    with open(os.path.join(ROOT, name)) as f:
        return yaml.safe_load(f)


def container_ports(service):
    """Container ports a service publishes ("127.0.0.1:${X:-8080}:8080" -> 8080)."""
    return sorted(int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", []))


def volumes(service):
    """{container path: source} of a service's volumes."""
    out = {}
    for v in service.get("volumes", []):
        parts = v.split(":")
        out[parts[1]] = parts[0]
    return out


def readme_settings():
    """RamPay:X:Y keys of the README's settings table, lower-cased."""
    with open(os.path.join(ROOT, "README.md")) as f:
        return {m.lower() for m in re.findall(r"^\| `(RamPay:[A-Za-z:]+)`", f.read(), re.M)}


class ComposeTests(unittest.TestCase):
    compose = load("compose.yaml")
    local = load("compose.local.yaml")
    services = compose["services"]

    EXPECTED_IMAGES = {
        "server": "rampay-server:latest",
        "worker-notifications": "rampay-worker:latest",
        "worker-analytics": "rampay-worker:latest",
        "worker-rewards": "rampay-worker:latest",
        "worker-webhooks": "rampay-worker:latest",
        "postgres": "postgres:17",
        "redis": "redis:7.4",
        "kafka": "apache/kafka:3.9.1",
        "kafka-init": "apache/kafka:3.9.1",
        "prometheus": "prom/prometheus:v3.5.0",
        "grafana": "grafana/grafana:12.1.1",
    }

    def test_every_service_has_its_image_pinned(self):
        self.assertEqual(set(self.services), set(self.EXPECTED_IMAGES), "the platform's services")
        for name, image in self.EXPECTED_IMAGES.items():
            self.assertEqual(self.services[name]["image"], image, name)
            if not image.startswith("rampay-"):
                self.assertNotRegex(image, r":latest$|^[^:]+$", f"{name}: third-party images are pinned to a version")

    def test_rampay_images_are_built_from_the_dockerfile_targets(self):
        self.assertEqual(self.services["server"]["build"], {"context": ".", "dockerfile": "Dockerfile", "target": "server"})
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            dockerfile = f.read()
        for name in ("worker-notifications", "worker-analytics", "worker-rewards", "worker-webhooks"):
            role = name.split("-", 1)[1]
            self.assertEqual(self.services[name]["build"]["target"], "worker")
            self.assertEqual(self.services[name]["command"][0], role, f"{name} runs its role")
            flags = self.worker_flags(name)
            self.assertEqual(flags["--group"], f"rampay-{role}", f"{name}: one consumer group per role")
            self.assertEqual((flags["--http-host"], flags["--http-port"]), ("0.0.0.0", "8080"), f"{name}: /metrics where Prometheus scrapes")
            # Role flags: analytics keeps its rollups under --out (which must be a volume), rewards calls the server.
            # Notifications keeps its outbox and audit log under --out and asks the server for recipients.
            # Webhooks keeps its state in the PostgreSQL store it shares with the server. A role that calls the server does
            # so with a service token it renews itself, keeping the newest pair in --token-file (on a volume: refresh
            # tokens rotate, so a restart must not start again from the env file's first pair).
            extra = {"notifications": {"--out", "--server", "--token-file"}, "analytics": {"--out"}, "rewards": {"--server", "--token-file"},
                     "webhooks": set()}[role]
            self.assertEqual(set(flags), {"--kafka", "--topic", "--group", "--http-host", "--http-port"} | extra, name)
            if "--out" in flags:
                mounts = [v.split(":")[1] for v in self.services[name].get("volumes", [])]
                self.assertIn(flags["--out"], mounts, f"{name}: --out is on a volume")
            if "--server" in flags:
                self.assertEqual(flags["--server"], "http://server:8080", name)
                self.assertIn("--token-file", flags, f"{name}: a service token needs its token file")
            if "--token-file" in flags:
                mounts = [v.split(":")[1] for v in self.services[name].get("volumes", [])]
                self.assertTrue(any(flags["--token-file"].startswith(m + "/") for m in mounts), f"{name}: --token-file is on a volume")
                env = self.example(self.services[name]["env_file"][0])
                self.assertIn("RAMPAY_SERVICE_TOKEN", env, name)
                self.assertIn("RAMPAY_SERVICE_REFRESH_TOKEN", env, f"{name}: the refresh token, so the worker can renew")
        for target in ("server", "worker"):
            self.assertRegex(dockerfile, rf"(?m)^FROM .* AS {target}$")
        # The worker target's HEALTHCHECK uses only what the image holds: the worker's own --health-check mode, on the
        # port compose gives every role.
        worker_stage = dockerfile.split(" AS worker", 1)[1].split("\nFROM ", 1)[0]
        self.assertRegex(worker_stage, r'HEALTHCHECK .*\\\n\s*CMD \["dotnet", "/app/rampay-worker.dll", "--health-check", "http://127.0.0.1:8080/health/live"\]')

    def test_notifications_run_once_in_the_worker_not_also_in_the_server(self):
        env = self.services["server"]["environment"]
        self.assertEqual(str(env["RAMPAY_NOTIFICATIONS__INSERVERCONSUMER"]).lower(), "false")
        n = self.services["worker-notifications"]
        self.assertEqual(n["env_file"], ["deploy/compose/secrets/worker-notifications.env"])
        self.assertTrue(os.path.exists(os.path.join(ROOT, "deploy/compose/secrets/worker-notifications.env.example")))
        self.assertIn("notifications-data", self.compose["volumes"])

    def test_webhooks_run_in_the_worker_on_the_store_it_shares_with_the_server(self):
        env = self.services["server"]["environment"]
        self.assertEqual(str(env["RAMPAY_WEBHOOKS__INSERVER"]).lower(), "false")
        server = self.example("deploy/compose/secrets/server.env")
        w = self.services["worker-webhooks"]
        self.assertEqual(w["env_file"], ["deploy/compose/secrets/worker-webhooks.env"])
        worker = self.example("deploy/compose/secrets/worker-webhooks.env")
        self.assertEqual(worker["RAMPAY_WEBHOOKS__SHAREDSTORE"], server["RAMPAY_WEBHOOKS__SHAREDSTORE"], "one store for the server and the workers")
        self.assertEqual(worker.get("RAMPAY_WEBHOOKS__SHAREDSTORESCHEMA", "rampay_workers"), "rampay_workers")
        self.assertIn("Host=postgres;", worker["RAMPAY_WEBHOOKS__SHAREDSTORE"])
        self.assertGreater(int(worker["RAMPAY_WEBHOOKS__LEASEMS"]), int(worker["RAMPAY_WEBHOOKS__TIMEOUTMS"]), "a lease outlasts an attempt")

    def test_ports(self):
        published = {name: container_ports(s) for name, s in self.services.items() if s.get("ports")}
        self.assertEqual(published, {"server": [7070, 8080], "prometheus": [9090], "grafana": [3000]})
        for name, s in self.services.items():
            for p in s.get("ports", []):
                self.assertTrue(str(p).startswith("127.0.0.1:"), f"{name}: {p} is published on loopback only by default")

    def test_every_stateful_service_keeps_its_data_in_a_named_volume(self):
        declared = set(self.compose["volumes"])
        data = {"server": "/var/lib/rampay", "postgres": "/var/lib/postgresql/data", "redis": "/data",
                "kafka": "/var/lib/kafka/data", "prometheus": "/prometheus", "grafana": "/var/lib/grafana"}
        for name, path in data.items():
            self.assertIn(path, volumes(self.services[name]), f"{name} keeps {path} in a volume")
            self.assertIn(volumes(self.services[name])[path], declared, f"{name}: {path} is a named volume")
        used = {src for s in self.services.values() for src in volumes(s).values() if not src.startswith(".")}
        self.assertEqual(used, declared, "every declared volume is used and every used one declared")

    def test_bind_mounts_exist_in_the_repository(self):
        for name, s in self.services.items():
            for target, src in volumes(s).items():
                if src.startswith("."):
                    self.assertTrue(os.path.exists(os.path.join(ROOT, src)), f"{name}: {src} (mounted at {target}) exists")
        self.assertEqual(volumes(self.services["prometheus"])["/etc/prometheus/prometheus.yml"], "./deploy/prometheus/prometheus.yml")
        self.assertEqual(volumes(self.services["grafana"])["/etc/grafana/provisioning"], "./deploy/grafana/provisioning")

    def test_the_dockerfile_volume_and_the_server_data_directory_agree(self):
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            dockerfile = f.read()
        self.assertIn("VOLUME /var/lib/rampay", dockerfile)
        self.assertIn("RAMPAY_DATADIRECTORY=/var/lib/rampay", dockerfile)

    def test_secrets_come_from_env_files_that_are_not_committed(self):
        with open(os.path.join(ROOT, ".gitignore")) as f:
            self.assertIn("deploy/compose/secrets/*.env", f.read().split())
        secret = re.compile(r"PASSWORD|SECRET|TOKEN|CONNECTION", re.I)
        for name, s in self.services.items():
            for key in (s.get("environment") or {}):
                self.assertNotRegex(key, secret, f"{name}: {key} belongs in an env file, not in compose.yaml")
            for env_file in s.get("env_file", []):
                self.assertTrue(os.path.exists(os.path.join(ROOT, env_file + ".example")), f"{name}: {env_file}.example is committed")
        for name, key in (("server", "RAMPAY_POSTGRES__CONNECTION"), ("server", "RAMPAY_REDIS__CONNECTION"), ("server", "RAMPAY_ADMIN__PASSWORD"),
                          ("postgres", "POSTGRES_PASSWORD"), ("redis", "REDIS_PASSWORD"), ("grafana", "GF_SECURITY_ADMIN_PASSWORD")):
            self.assertIn(key, self.example(self.services[name]["env_file"][0]), f"{name}'s env file example sets {key}")

    def test_the_example_secrets_agree_with_each_other(self):
        server = self.example("deploy/compose/secrets/server.env")
        pg = self.example("deploy/compose/secrets/postgres.env")["POSTGRES_PASSWORD"]
        redis = self.example("deploy/compose/secrets/redis.env")["REDIS_PASSWORD"]
        self.assertIn(f"Password={pg};", server["RAMPAY_POSTGRES__CONNECTION"])
        self.assertIn("Host=postgres;", server["RAMPAY_POSTGRES__CONNECTION"])
        self.assertIn(f"Username={self.services['postgres']['environment']['POSTGRES_USER']};", server["RAMPAY_POSTGRES__CONNECTION"])
        self.assertIn(f"Database={self.services['postgres']['environment']['POSTGRES_DB']}", server["RAMPAY_POSTGRES__CONNECTION"])
        self.assertEqual(server["RAMPAY_REDIS__CONNECTION"], f"redis:6379,password={redis}")

    def test_server_environment_names_real_settings(self):
        settings = readme_settings()
        self.assertGreater(len(settings), 50, "the README's settings table was read")
        env = dict(self.services["server"]["environment"])
        env.update(self.example("deploy/compose/secrets/server.env"))
        for key in env:
            self.assertTrue(key.startswith("RAMPAY_"), key)
            setting = ("RamPay:" + key[len("RAMPAY_"):].replace("__", ":")).lower()
            self.assertIn(setting, settings, f"{key} is not a setting of the README's table")
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            for key in re.findall(r"(RAMPAY_[A-Z_]+)=", f.read()):
                self.assertIn(("RamPay:" + key[7:].replace("__", ":")).lower(), settings, f"Dockerfile: {key}")

    def test_kafka_runs_kraft_and_everyone_agrees_on_its_address_and_topic(self):
        k = self.services["kafka"]["environment"]
        self.assertEqual(set(k["KAFKA_PROCESS_ROLES"].split(",")), {"broker", "controller"})
        self.assertIn("PLAINTEXT://kafka:9092", k["KAFKA_ADVERTISED_LISTENERS"])
        self.assertIn("1@kafka:9093", k["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        self.assertIn("CONTROLLER://:9093", k["KAFKA_LISTENERS"])
        env = self.services["server"]["environment"]
        self.assertEqual(env["RAMPAY_KAFKA__BOOTSTRAPSERVERS"], "kafka:9092")
        self.assertEqual(env["RAMPAY_KAFKA__TOPIC"], "rampay.events")
        for name in ("worker-notifications", "worker-analytics", "worker-rewards", "worker-webhooks"):
            flags = self.worker_flags(name)
            self.assertEqual(flags["--kafka"], "kafka:9092", name)
            self.assertEqual(flags["--topic"], "rampay.events", name)
        init = self.services["kafka-init"]["command"]
        self.assertEqual(init[init.index("--topic") + 1], "rampay.events")
        self.assertEqual(init[init.index("--bootstrap-server") + 1], "kafka:9092")

    def test_dependencies(self):
        expected = {
            "server": {"postgres": "service_healthy", "redis": "service_started", "kafka-init": "service_completed_successfully"},
            "worker-notifications": {"server": "service_healthy", "kafka-init": "service_completed_successfully"},
            "worker-analytics": {"server": "service_healthy", "kafka-init": "service_completed_successfully"},
            "worker-rewards": {"server": "service_healthy", "kafka-init": "service_completed_successfully"},
            "worker-webhooks": {"server": "service_healthy", "postgres": "service_healthy", "kafka-init": "service_completed_successfully"},
            "kafka-init": {"kafka": "service_healthy"},
            "prometheus": {"server": "service_started"},
            "grafana": {"prometheus": "service_started"},
        }
        actual = {name: {dep: c["condition"] for dep, c in s["depends_on"].items()} for name, s in self.services.items() if "depends_on" in s}
        self.assertEqual(actual, expected)
        for name, deps in actual.items():
            for dep, condition in deps.items():
                if condition == "service_healthy" and dep != "server":  # the server's health check is the image's HEALTHCHECK
                    self.assertIn("healthcheck", self.services[dep], f"{name} waits for {dep} to be healthy: it needs a healthcheck")

    def test_the_server_gets_the_grace_period_its_stop_needs(self):
        self.assertEqual(self.services["server"]["stop_grace_period"], "60s")
        with open(os.path.join(ROOT, "deploy", "k8s", "base", "server.yaml")) as f:
            self.assertIn("terminationGracePeriodSeconds: 60", f.read())

    def test_prometheus_scrapes_the_services_by_their_compose_names(self):
        prom = load("deploy/prometheus/prometheus.yml")
        targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
        for t in targets:
            host, port = t.split(":")
            if host == "localhost":
                continue
            self.assertIn(host, self.services, f"scrape target {t} is a compose service")
            self.assertEqual(port, "8080", t)
        self.assertEqual({t.split(":")[0] for t in targets} - {"localhost"},
                         {"server", "worker-notifications", "worker-analytics", "worker-rewards", "worker-webhooks"})
        ds = load("deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
        self.assertEqual(ds["url"], "http://prometheus:9090")

    def test_the_local_override_swaps_images_and_nothing_else_that_matters(self):
        local = self.local["services"]
        self.assertNotIn("grafana", local)
        for name in ("postgres", "redis", "kafka", "kafka-init", "prometheus", "server"):
            self.assertTrue(local[name]["image"].startswith("localhost/"), name)
        for name, s in local.items():
            self.assertIn(name, self.services, f"{name} is a service of compose.yaml")
            for key in s:
                self.assertIn(key, {"image", "container_name", "volumes", "ports", "entrypoint", "network_mode", "environment"}, f"{name}: {key}")
            self.assertNotIn("environment", s, f"{name}: the override changes no setting")

    def worker_flags(self, name):
        """The --flag value pairs after a worker's role (rampay-worker ROLE --kafka ... --group ...)."""
        args = self.services[name]["command"][1:]
        self.assertEqual(len(args) % 2, 0, f"{name}: flags come in pairs: {args}")
        return dict(zip(args[0::2], args[1::2]))

    @staticmethod
    def example(env_file):
        out = {}
        with open(os.path.join(ROOT, env_file + ".example")) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    out[k] = v
        return out


if __name__ == "__main__":
    unittest.main(verbosity=1)
