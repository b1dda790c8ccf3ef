"""Apache Kafka on this machine: a KRaft cluster of 1 or 3 combined broker+controller nodes on 127.0.0.1.

The engine production runs, for development, tests and failure drills: durable (each node's log on disk under
`DIR/node-<id>/`), idempotent and transactional producers, real replication. Two halves:

- a pure planner (`plan_cluster`, `server_properties`, `log4j2_config`, `java_command`, ...) that turns settings
  into each node's properties and command line, unit-tested without a JVM;
- a small shell (`resolve_jars`, `ApacheKafka`) that gets the jars, formats storage once, starts and stops the JVMs
  and waits until every node answers a real Kafka metadata request.

The jars come from an unpacked distribution named by KAFKA_HOME (its libs/*.jar) or, otherwise, from Maven Central
through `mvn dependency:copy-dependencies` on a generated pom, copied once into
`~/.cache/mash-broker/kafka-<KAFKA_VERSION>/libs` (XDG_CACHE_HOME is honoured). KAFKA_VERSION is the one pin.

Choices an operator would defend:
- The cluster's layout (cluster id, node ids, ports) is written to `DIR/cluster.json` on first start and reused on
  every restart, so a restarted cluster keeps its address and its static controller quorum; storage is formatted only
  where a node has no `meta.properties` yet, so a restart never wipes data.
- Static quorum (`controller.quorum.voters`): every node knows every voter from its config, so each node is formatted
  on its own and a SIGKILLed node comes back on the same ports without a reconfiguration step.
- Replication follows the cluster size: internal topics at min(3, N), `min.insync.replicas` 1 on one node and 2 on
  three, so an `acks=all` write on three nodes survives the loss of any one of them.
- Nodes die with the process that started them (PR_SET_PDEATHSIG, SIGTERM: a clean shutdown), so a crashed test or
  CLI leaves no JVM holding ports and log-directory locks behind.
- A small JVM (HEAP, JVM_FLAGS, JVM_ENV, the cleaner's dedupe buffer): the broker keeps little on its heap and
  serves reads from the OS page cache, which is not its RSS; one node levels off near 240 MB where -Xmx384m, G1 and
  C2 took 406-591 MB (issue 24), so three nodes and the service fit a small machine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from broker.errors import Unavailable
from broker.kafka.embedded import die_with_parent

KAFKA_VERSION = "4.3.1"  # the one pin: org.apache.kafka:kafka_2.13 from Maven Central
LOG4J_VERSION = "2.25.3"  # log4j2 behind Kafka's slf4j 1.7 API (what the Apache distribution ships)
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MIN_JAVA = 17
HOST = "127.0.0.1"
# The node's heap. Its live set is about 40 MB (metadata, metrics, request buffers) plus the log cleaner's dedupe buffer
# (LOG_CLEANER_DEDUPE_BYTES): 55-60 MB. Under -Xmx384m the heap simply filled to 384 over an hour's soak (RSS 406 ->
# 591 MB), garbage the collector had no reason to collect sooner. 112 MB, of which a young generation of 24 MB (a young
# collection's pause follows what survives it, not the generation's size), keeps the old generation as large as a
# 128 MB heap's default split would and the RSS 15 MB lower.
HEAP = ("-Xms64m", "-Xmx112m", "-Xmn24m")
SERVER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
# Not kafka-run-class.sh's G1: on a 128 MB heap G1's own structures cost about 20 MB of RSS more than the serial
# collector (what the JVM itself picks on a small machine); the serial young pauses were 18-27 ms on average on the
# shared 2-core host, full collections about 0.17 s every 1.5-3 minutes. C1 only (TieredStopAtLevel=1): about
# 35 MB less code cache and compiler memory, and the JVM's CPU per event no higher (lower in the short benches:
# C2's compiling costs more than its faster code saves a broker this lightly loaded).
# An OutOfMemoryError ends the node rather than leaving it half alive; no GUI toolkit.
JVM_FLAGS = ("-server", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError",
             "-Djava.awt.headless=true")
# glibc gives each of a JVM's ~100 threads' first mallocs an arena of its own, up to 8 per core: 15 arenas holding
# 59 MB of RSS in one node under -Xmx384m. Two are plenty for a broker's native allocations. A caller's value is kept.
JVM_ENV = {"MALLOC_ARENA_MAX": "2"}
# The log cleaner's offset map, allocated on the heap at start: Kafka's default is 128 MiB, which was most of the live
# heap. 16 MiB maps about 600,000 distinct keys per cleaning pass; the only compacted topics here are Kafka's own
# (__consumer_offsets, __transaction_state), whose keys are groups and transactional ids, a few hundred at most.
LOG_CLEANER_DEDUPE_BYTES = 16 * 1024 * 1024
CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"  # Kafka writes it in each log dir after a clean shutdown
SUPPORTED_NODES = (1, 3)
# `mash-broker run` without KAFKA_BOOTSTRAP_SERVERS: auto (Apache Kafka where Java 17+ and the jars are to hand, else
# the embedded Tansu), apache (Apache Kafka or a plain start failure) or tansu (the memory-only embedded broker).
LOCAL_KAFKA_ENV = "MASH_LOCAL_KAFKA"
LOCAL_KAFKA_CHOICES = ("auto", "apache", "tansu")
T = TypeVar("T")


class KafkaUnavailable(Unavailable, RuntimeError):
    """Java or the jars cannot be had, or the cluster will not start: the message is one plain line."""


# --- the pure planner -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodePlan:
    node_id: int
    broker_port: int
    controller_port: int
    node_dir: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.broker_port}"

    @property
    def log_dir(self) -> Path:
        return self.node_dir / "data"

    @property
    def logs(self) -> Path:
        return self.node_dir / "logs"

    @property
    def properties_file(self) -> Path:
        return self.node_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.node_dir / "log4j2.xml"

    @property
    def pid_file(self) -> Path:
        return self.node_dir / "pid"


@dataclass(frozen=True)
class ClusterPlan:
    cluster_id: str
    nodes: tuple[NodePlan, ...]

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def node(self, node_id: int) -> NodePlan:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(f"no node {node_id} in this cluster (nodes: {[n.node_id for n in self.nodes]})")


def new_cluster_id() -> str:
    """Kafka's cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` gives),
    never starting with '-', which `kafka-storage format -t` would read as an option (about 1 start in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def plan_cluster(nodes: int, data_dir: Path, cluster_id: str, ports: Sequence[tuple[int, int]]) -> ClusterPlan:
    """Node ids 1..N, node i on ports[i-1] = (broker, controller), its files under data_dir/node-<id>/."""
    if nodes not in SUPPORTED_NODES:
        raise ValueError(f"nodes must be one of {SUPPORTED_NODES}, not {nodes}")
    if len(ports) != nodes:
        raise ValueError(f"{nodes} nodes need {nodes} port pairs, got {len(ports)}")
    flat = [p for pair in ports for p in pair]
    if len(set(flat)) != len(flat):
        raise ValueError("every port must differ")
    return ClusterPlan(cluster_id, tuple(
        NodePlan(i, b, c, data_dir / f"node-{i}") for i, (b, c) in enumerate(ports, start=1)))


def server_properties(plan: ClusterPlan, node: NodePlan) -> dict[str, str]:
    """One node's server.properties: combined roles, static quorum, replication that follows the cluster size."""
    n = plan.size
    replicas = str(min(3, n))
    isr = str(min(2, n))
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(f"{v.node_id}@{HOST}:{v.controller_port}" for v in plan.nodes),
        "listeners": f"PLAINTEXT://{HOST}:{node.broker_port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{node.broker_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.log_dir),
        "default.replication.factor": replicas,
        "min.insync.replicas": "1" if n == 1 else "2",
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": isr,
        # Never elect a replica that missed acknowledged writes: losing a node must not lose a 202'd record.
        "unclean.leader.election.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        "log.cleaner.dedupe.buffer.size": str(LOG_CLEANER_DEDUPE_BYTES),
    }


def controller_only_properties(plan: ClusterPlan, node: NodePlan) -> dict[str, str]:
    """A node's controller without its broker, on the node's own controller port and metadata log: the quorum's
    stand-in while the cluster's last broker shuts down (ApacheKafka.stop)."""
    return {
        "process.roles": "controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(f"{v.node_id}@{HOST}:{v.controller_port}" for v in plan.nodes),
        "listeners": f"CONTROLLER://{HOST}:{node.controller_port}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(node.log_dir),
    }


def render_properties(props: Mapping[str, str]) -> str:
    """Java properties text; values here are ports, paths and names, escaped where Java reads a backslash or colon."""
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n")
    return "".join(f"{key}={esc(value)}\n" for key, value in props.items())


def log4j2_config(node: NodePlan) -> str:
    """log4j2 (Kafka 4.x) writing the node's log to logs/server.log, rolled at 20 MB, five kept."""
    logs = node.logs
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <RollingFile name="server" fileName="{logs}/server.log" filePattern="{logs}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="5"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.clients" level="warn"/>
    <Root level="info"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
"""


def java_command(java: str, classpath: Sequence[Path], node: NodePlan, main: str, args: Sequence[str],
                 heap: Sequence[str] = HEAP, extra_flags: Sequence[str] = ()) -> list[str]:
    return [java, *heap, *JVM_FLAGS, *extra_flags, f"-Dlog4j2.configurationFile={node.log4j_file}",
            f"-Dkafka.logs.dir={node.logs}", "-cp", os.pathsep.join(str(p) for p in classpath), main, *args]


def jvm_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a node's JVM runs in: this process's, with JVM_ENV where it does not set those itself."""
    return {**JVM_ENV, **(os.environ if base is None else base)}


def server_command(java: str, classpath: Sequence[Path], node: NodePlan,
                   extra_flags: Sequence[str] = ()) -> list[str]:
    return java_command(java, classpath, node, SERVER_MAIN, [str(node.properties_file)], extra_flags=extra_flags)


def format_command(java: str, classpath: Sequence[Path], plan: ClusterPlan, node: NodePlan,
                   extra_flags: Sequence[str] = ()) -> list[str]:
    # Static quorum: the voters are in the config, so neither --standalone nor --initial-controllers applies.
    return java_command(java, classpath, node, STORAGE_TOOL,
                        ["format", "-t", plan.cluster_id, "-c", str(node.properties_file)],
                        heap=("-Xms64m", "-Xmx256m"), extra_flags=extra_flags)


def layout_json(plan: ClusterPlan) -> str:
    return json.dumps({"kafka_version": KAFKA_VERSION, "cluster_id": plan.cluster_id,
                       "nodes": [{"id": n.node_id, "broker_port": n.broker_port,
                                  "controller_port": n.controller_port} for n in plan.nodes]}, indent=2) + "\n"


def plan_from_layout(text: str, data_dir: Path) -> ClusterPlan:
    doc = json.loads(text)
    nodes = sorted(doc["nodes"], key=lambda n: n["id"])
    if [n["id"] for n in nodes] != list(range(1, len(nodes) + 1)):
        raise ValueError("node ids must be 1..N")
    return plan_cluster(len(nodes), data_dir, doc["cluster_id"],
                        [(n["broker_port"], n["controller_port"]) for n in nodes])


def local_kafka_choice(value: str | None) -> str:
    choice = (value or "auto").strip().lower()
    if choice not in LOCAL_KAFKA_CHOICES:
        raise KafkaUnavailable(f"{LOCAL_KAFKA_ENV} must be one of {', '.join(LOCAL_KAFKA_CHOICES)}")
    return choice


def java_major(version_output: str) -> int | None:
    """The major version from `java -version` (stderr): '17.0.15' -> 17, '1.8.0_402' -> 8."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def maven_pom(version: str = KAFKA_VERSION, log4j: str = LOG4J_VERSION) -> str:
    """The generated pom whose runtime dependencies are a Kafka server's classpath."""
    def dep(group: str, artifact: str, ver: str) -> str:
        return (f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                f"<version>{ver}</version></dependency>\n")
    return ('<project xmlns="http://maven.apache.org/POM/4.0.0">\n  <modelVersion>4.0.0</modelVersion>\n'
            "  <groupId>local.mash-broker</groupId><artifactId>kafka-runtime</artifactId>"
            f"<version>{version}</version><packaging>pom</packaging>\n  <dependencies>\n"
            + dep("org.apache.kafka", "kafka_2.13", version)
            + dep("org.apache.logging.log4j", "log4j-slf4j-impl", log4j)
            + dep("org.apache.logging.log4j", "log4j-core", log4j)
            + "  </dependencies>\n</project>\n")


# --- the shell: Java, jars, processes --------------------------------------------------------------------------------
def find_java() -> str:
    """The java to run (JAVA_HOME first, then PATH), checked to be 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home, "bin", "java")) if home and Path(home, "bin", "java").is_file() else shutil.which("java")
    if not java:
        raise KafkaUnavailable(f"Java not found (set JAVA_HOME or put java on PATH; Kafka needs Java {MIN_JAVA}+)")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaUnavailable(f"{java} -version failed ({type(exc).__name__})") from None
    major = java_major(out.stderr + out.stdout)
    if major is None or major < MIN_JAVA:
        raise KafkaUnavailable(f"{java} is Java {major or 'of unknown version'}; Kafka needs Java {MIN_JAVA}+")
    return java


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mash-broker"


def jar_cache(version: str = KAFKA_VERSION) -> Path:
    return cache_root() / f"kafka-{version}"


def resolve_jars(version: str = KAFKA_VERSION, cache: Path | None = None, timeout: float = 1200.0,
                 announce: Callable[[str], None] | None = None) -> list[Path]:
    """The Kafka server's classpath: KAFKA_HOME/libs/*.jar, else the Maven-resolved cache (resolving it once;
    `announce` is told just before Maven runs, which takes a while on a cold Maven cache)."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        jars = sorted(Path(home, "libs").glob("*.jar"))
        if not any(j.name.startswith("kafka_2.13-") for j in jars):
            raise KafkaUnavailable(f"KAFKA_HOME={home} has no libs/kafka_2.13-*.jar (an unpacked Kafka distribution)")
        return jars
    where = cache / f"kafka-{version}" if cache else jar_cache(version)
    libs = where / "libs"
    done = where / "complete"
    if done.is_file():
        return sorted(libs.glob("*.jar"))
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaUnavailable("Maven (mvn) not found and KAFKA_HOME not set: cannot get the Kafka jars")
    where.mkdir(parents=True, exist_ok=True)
    with open(where / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second resolver (another test process, the CLI) waits for the first
        if done.is_file():
            return sorted(libs.glob("*.jar"))
        if announce is not None:
            announce(f"resolving Apache Kafka {version} through Maven into {where} (once)")
        (where / "pom.xml").write_text(maven_pom(version))
        staging = where / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [mvn, "-B", "-q", "-f", str(where / "pom.xml"), f"{DEPENDENCY_PLUGIN}:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={staging}"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise KafkaUnavailable(f"Maven did not resolve Kafka {version} within {timeout:.0f}s") from None
        (where / "mvn.log").write_text(out.stdout + out.stderr)
        jars = sorted(staging.glob("*.jar"))
        if out.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
            raise KafkaUnavailable(f"Maven could not resolve org.apache.kafka:kafka_2.13:{version}: "
                                   f"{_first_error(out.stdout + out.stderr)} (full output: {where / 'mvn.log'})")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        done.write_text(f"{len(jars)} jars\n")
    return sorted(libs.glob("*.jar"))


def _first_error(output: str) -> str:
    for line in output.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if line.startswith("[ERROR]") and len(line) > 8:
            return line[8:][:300]
    return f"mvn exited without an [ERROR] line ({len(output)} characters of output)"


def unavailable_reason() -> str | None:
    """Why Apache Kafka cannot run here (for a test's skip), or None when Java 17+ and the jars are to hand."""
    try:
        find_java()
        resolve_jars()
    except KafkaUnavailable as exc:
        return str(exc)
    return None


def _free_ports(count: int) -> list[int]:
    """Distinct free ports, all held at once while picking so none is handed out twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]


def _ports_free(ports: Sequence[int]) -> bool:
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_on(node: NodePlan) -> int | None:
    """The pid of a live Kafka already started on this node's directory (from its pid file), if any."""
    try:
        pid = int(node.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    return pid if _pid_alive(pid) and str(node.properties_file) in cmdline else None


async def _node_serves(address: str, brokers: int, timeout_ms: int = 3000) -> bool:
    """A real Kafka Metadata request to one node: it answers and lists `brokers` live (unfenced) brokers."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaError

    host, port = address.rsplit(":", 1)
    try:  # not listening yet: say so quietly, before a client that logs every refused connection
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    client = AIOKafkaClient(bootstrap_servers=address, request_timeout_ms=timeout_ms,
                            client_id="mash-broker-kafka-probe")
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_ms / 1000 + 1)
        return len(client.cluster.brokers()) == brokers
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


def _run_coroutine(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a loop of its own, in a thread, so this works inside a running event loop."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro_factory()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="mash-kafka-probe", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


@dataclass
class ApacheKafka:
    """A local Apache Kafka cluster (see the module docstring); a context manager that starts and stops it."""

    nodes: int = 1
    data_dir: Path = field(default_factory=lambda: Path("kafka-data"))
    start_timeout: float = 180.0
    stop_timeout: float = 60.0
    # A node left by a killed parent on this data dir is still shutting down (PR_SET_PDEATHSIG sent it SIGTERM):
    # wait this long for it to go before refusing to start (`mash-broker run` restarted straight after a kill -9).
    wait_for_previous: float = 0.0
    java: str | None = None
    classpath: list[Path] | None = None
    # Failure drills tune a throwaway cluster for speed (tests/failure/cluster.py): server properties laid over
    # server_properties' (shorter broker session timeouts, fewer internal partitions) and extra JVM flags.
    overrides: Mapping[str, str] = field(default_factory=dict)
    jvm_flags: Sequence[str] = ()
    # The single node's PLAINTEXT port (MASH_LOCAL_KAFKA_PORT for `mash-broker run`): a hub's consumer needs a known
    # address. None: a free port, chosen once and kept in cluster.json. The controller port stays the layout's own.
    broker_port: int | None = None
    plan: ClusterPlan | None = None
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    # -- public API --
    @property
    def bootstrap_servers(self) -> str:
        return self._plan().bootstrap_servers

    def address(self, node_id: int) -> str:
        """One node's PLAINTEXT host:port."""
        return self._plan().node(node_id).address

    def node_dir(self, node_id: int) -> Path:
        return self._plan().node(node_id).node_dir

    def pid(self, node_id: int) -> int | None:
        proc = self.processes.get(node_id)
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> ApacheKafka:
        """Start every node and return once each answers a metadata request listing all N brokers."""
        self._prepare()
        try:
            self._launch_all()
            _run_coroutine(lambda: self._served([n.node_id for n in self._plan().nodes]))
        except BaseException:
            self.stop()
            raise
        return self

    async def astart(self) -> ApacheKafka:
        """start() for async code: Maven, formatting and the wait happen off the event loop; the JVMs are still
        spawned from the calling thread (PR_SET_PDEATHSIG ties a child to the thread that spawned it)."""
        await asyncio.to_thread(self._prepare)
        try:
            self._launch_all()
            await self._served([n.node_id for n in self._plan().nodes])
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    def start_node(self, node_id: int) -> None:
        """(Re)start one node of a running cluster on its own ports and data, and wait until it serves again."""
        self._launch(self._idle_node(node_id))
        _run_coroutine(lambda: self._served([node_id]))

    async def astart_node(self, node_id: int) -> None:
        self._launch(self._idle_node(node_id))
        await self._served([node_id])

    def start_nodes(self, node_ids: Sequence[int]) -> None:
        """(Re)start several nodes at once and wait until each serves: after losing a majority, no node can serve
        (list every broker) until the others are back, so they cannot be restarted one at a time."""
        for node in [self._idle_node(i) for i in node_ids]:
            self._launch(node)
        _run_coroutine(lambda: self._served(list(node_ids)))

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (a crash, for failure drills): no clean shutdown, its data stays as the crash left it."""
        proc = self.processes.pop(node_id, None)
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()
        self._plan().node(node_id).pid_file.unlink(missing_ok=True)

    def stop(self) -> list[int]:
        """Stop every node cleanly, one at a time, each while a majority of the controller quorum still runs; returns
        the ids of any that had to be SIGKILLed after stop_timeout.

        Why not SIGTERM them all at once: a combined node's broker waits (up to Kafka's hard-coded 5 minutes) for the
        active controller to grant its controlled shutdown, and the grant is a metadata record the quorum must commit.
        Nodes stopped together race: once two have finished, the third waits for a grant no quorum can commit
        (KAFKA-14287). One at a time, every grant but the last has a majority; for the last, a controller-only
        stand-in of an already stopped node (same node id, same metadata log, no broker) is started first so that
        a majority stands for it too, and stopped after it. The stand-in touches no partition data."""
        running = [i for i, p in sorted(self.processes.items()) if p.poll() is None]
        forced: list[int] = []
        stand_ins: dict[int, subprocess.Popen[bytes]] = {}
        try:
            for position, node_id in enumerate(running):
                live_voters = len(running) - position + len(stand_ins)
                for stopped in self._stopped_voters(exclude=set(running[position:]) | set(stand_ins)):
                    if live_voters > self._plan().size // 2:
                        break
                    stand_ins[stopped] = self._launch_stand_in(stopped)
                    live_voters += 1
                if not self._terminate(self.processes[node_id]):
                    forced.append(node_id)
        finally:
            for proc in stand_ins.values():
                self._terminate(proc)
        for node_id in list(self.processes):
            self.processes.pop(node_id).wait()
            if self.plan is not None:
                self.plan.node(node_id).pid_file.unlink(missing_ok=True)
        return forced

    def _terminate(self, proc: subprocess.Popen[bytes]) -> bool:
        """SIGTERM and wait up to stop_timeout; SIGKILL after that. True when it stopped on SIGTERM."""
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(self.stop_timeout)
            return True
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return False

    def _stopped_voters(self, exclude: set[int]) -> list[int]:
        return [n.node_id for n in self._plan().nodes if n.node_id not in exclude and self.pid(n.node_id) is None]

    def _launch_stand_in(self, node_id: int) -> subprocess.Popen[bytes]:
        """A stopped node's controller alone (controller_only_properties), so the quorum keeps a majority."""
        assert self.java and self.classpath
        plan = self._plan()
        node = plan.node(node_id)
        props = node.node_dir / "stand-in.properties"
        props.write_text(render_properties(controller_only_properties(plan, node)))
        with open(node.logs / "stand-in.log", "ab") as out:
            return subprocess.Popen(java_command(self.java, self.classpath, node, SERVER_MAIN, [str(props)]),
                                    env=jvm_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=node.node_dir, preexec_fn=die_with_parent, start_new_session=True)

    def alive(self) -> bool:
        """Every node started here still runs."""
        return bool(self.processes) and all(p.poll() is None for p in self.processes.values())

    def exited(self) -> dict[int, int]:
        """Nodes started here that have exited on their own, with their exit status (negative: killed by a signal)."""
        return {i: p.returncode for i, p in self.processes.items() if p.poll() is not None}

    async def astop(self) -> list[int]:
        return await asyncio.to_thread(self.stop)

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> ApacheKafka:
        return await self.astart()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.astop()

    # -- the shell's steps --
    def _idle_node(self, node_id: int) -> NodePlan:
        node = self._plan().node(node_id)
        if self.pid(node_id) is not None:
            raise KafkaUnavailable(f"node {node_id} is already running")
        return node

    def _launch_all(self) -> None:
        for node in self._plan().nodes:
            self._launch(node)

    def _plan(self) -> ClusterPlan:
        if self.plan is None:
            raise KafkaUnavailable("the cluster has not been started")
        return self.plan

    def _prepare(self) -> None:
        """Java, jars, the layout (reused from DIR/cluster.json) and each node's files; formats new nodes."""
        if self.nodes not in SUPPORTED_NODES:
            raise KafkaUnavailable(f"--nodes must be 1 or 3, not {self.nodes}")
        if self.broker_port is not None and self.nodes != 1:
            raise KafkaUnavailable("a broker port can be given to a 1-node cluster only")
        self.java = self.java or find_java()
        self.classpath = self.classpath or resolve_jars()
        self.data_dir = Path(self.data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.plan = self._layout()
        for node in self.plan.nodes:
            deadline = time.monotonic() + self.wait_for_previous
            while (pid := _running_on(node)) is not None and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid is not None:
                raise KafkaUnavailable(f"a Kafka node (pid {pid}) already runs on {node.node_dir}")
            node.logs.mkdir(parents=True, exist_ok=True)
            node.log_dir.mkdir(parents=True, exist_ok=True)
            node.properties_file.write_text(render_properties({**server_properties(self.plan, node),
                                                                **self.overrides}))
            node.log4j_file.write_text(log4j2_config(node))
        self._format([n for n in self.plan.nodes if not (n.log_dir / "meta.properties").is_file()])

    def _layout(self) -> ClusterPlan:
        layout = self.data_dir / "cluster.json"
        if layout.is_file():
            try:
                plan = plan_from_layout(layout.read_text(), self.data_dir)
            except (ValueError, KeyError, TypeError) as exc:
                raise KafkaUnavailable(f"{layout} is not a cluster layout ({type(exc).__name__}): "
                                       "move the directory aside or give another --data-dir") from None
            if plan.size != self.nodes:
                raise KafkaUnavailable(f"{self.data_dir} holds a {plan.size}-node cluster, not {self.nodes}: "
                                       "give that --nodes or another --data-dir")
            plan = self._with_broker_port(plan, layout)
            ports = [p for n in plan.nodes for p in (n.broker_port, n.controller_port)]
            deadline = time.monotonic() + self.wait_for_previous
            while not _ports_free(ports) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not _ports_free(ports):
                raise KafkaUnavailable(f"a port of {self.data_dir}'s cluster ({', '.join(map(str, ports))}) is in "
                                       "use: stop what holds it, the cluster keeps its address across restarts")
            return plan
        ports = _free_ports(2 * self.nodes + 1)
        if self.broker_port is not None:  # the chosen port, and a free controller port that is not it
            ports = [self.broker_port, next(p for p in ports if p != self.broker_port)]
        plan = plan_cluster(self.nodes, self.data_dir, new_cluster_id(),
                            [(ports[2 * i], ports[2 * i + 1]) for i in range(self.nodes)])
        layout.write_text(layout_json(plan))
        return plan

    def _with_broker_port(self, plan: ClusterPlan, layout: Path) -> ClusterPlan:
        """The layout with the configured broker port, rewritten when it changed. Only the client listener moves:
        the controller port, which the static quorum and the formatted storage name, is kept."""
        if self.broker_port is None or plan.nodes[0].broker_port == self.broker_port:
            return plan
        node = plan.nodes[0]
        moved = plan_cluster(1, self.data_dir, plan.cluster_id, [(self.broker_port, node.controller_port)])
        layout.write_text(layout_json(moved))
        return moved

    def _format(self, nodes: Sequence[NodePlan]) -> None:
        assert self.java and self.classpath and self.plan
        running = []
        for node in nodes:
            log = open(node.logs / "format.log", "ab")  # noqa: SIM115 - closed below, after the tool exits
            running.append((node, log, subprocess.Popen(
                format_command(self.java, self.classpath, self.plan, node, self.jvm_flags), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)))
        failed = []
        for node, log, proc in running:
            try:
                code = proc.wait(self.start_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            log.close()
            if code != 0:
                failed.append(node)
        if failed:
            raise KafkaUnavailable("formatting storage failed for node " + ", ".join(
                f"{n.node_id} (see {n.logs / 'format.log'})" for n in failed))

    def _launch(self, node: NodePlan) -> None:
        assert self.java and self.classpath
        with open(node.logs / "stdout.log", "ab") as out:
            proc = subprocess.Popen(server_command(self.java, self.classpath, node, self.jvm_flags),
                                    env=jvm_env(), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=node.node_dir,
                                    preexec_fn=die_with_parent, start_new_session=True)
        self.processes[node.node_id] = proc
        node.pid_file.write_text(f"{proc.pid}\n")

    async def _served(self, node_ids: Sequence[int]) -> None:
        """Until each node answers a metadata request listing every broker; a node that exits ends the wait."""
        plan = self._plan()
        deadline = time.monotonic() + self.start_timeout
        for node_id in node_ids:
            node = plan.node(node_id)
            while not await _node_serves(node.address, plan.size):
                proc = self.processes[node_id]
                if proc.poll() is not None:
                    raise KafkaUnavailable(f"node {node_id} exited at start with status {proc.returncode} "
                                           f"(see {node.logs / 'server.log'})")
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(f"node {node_id} did not serve within {self.start_timeout:.0f}s "
                                           f"(see {node.logs / 'server.log'})")
                await asyncio.sleep(0.5)
