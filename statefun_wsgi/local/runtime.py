"""The local runtime's scheduler: StateFun's delivery rules on one machine.

What it does as the real runtime does (see ``docs/protocol.md``):

* per address, at most one batch in flight; messages that arrive meanwhile wait
  in a backlog and go out together as the next batch (at most
  ``maxNumBatchRequests`` of them), in arrival order;
* every batch carries every registered state of the function type (absent ones
  empty); mutations of any other name fail;
* a reply's effects are applied all together, once: outgoing messages, delayed
  messages, egress records, then state mutations;
* delayed messages are delivered after their delay; expired state reads as absent
  (``expireAfter`` with ``after-invoke`` or ``after-write``);
* retryable failures (connection errors, 408, 409, 420, 429, 499, 5xx) are
  retried with backoff from 10 ms, doubling, until the function's ``timeout``;
  anything else (another 4xx, a wrong content type, a reply that does not parse,
  retries run out) is a failure, reported with the address and the reason.

Where the real runtime would fail the job and restart it from a checkpoint, the
local runtime stops and raises :class:`FunctionCallFailedError`: nothing of the
failed batch was applied, so nothing is applied twice.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional, Tuple, Type, TypeVar, Union

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from .._proto.request_reply_pb2 import FromFunction, ToFunction
from ..context import Address, pack_any
from ..errors import ConfigurationError, UnexpectedMessageTypeError
from ..functions import StatefulFunctions, split_typename, type_name_of_url
from ..handler import RequestReplyHandler
from ..module_yaml import FunctionSpec, ModuleSpec, StateSpec, load_module_yaml
from .records import EgressRecord, Envelope
from .transport import HttpTransport, InProcessTransport, Transport, TransportError

__all__ = ["FunctionCallFailedError", "LocalRuntime", "SystemClock", "VirtualClock"]

logger = logging.getLogger("statefun_wsgi.local")

M = TypeVar("M", bound=Message)

FIRST_BACKOFF = 0.010  # seconds, doubling, as the runtime's retry policy
_MODIFY = FromFunction.PersistedValueMutation.MODIFY


class FunctionCallFailedError(RuntimeError):
    """A batch failed in a way the runtime does not retry (or retries ran out).

    ``address`` is the function address, ``reason`` what went wrong.
    """

    def __init__(self, address: Address, reason: str) -> None:
        super().__init__(f"{address.typename()}/{address.identity}: {reason}")
        self.address = address
        self.reason = reason


class SystemClock:
    """Real time (monotonic seconds)."""

    virtual = False

    def now(self) -> float:
        return time.monotonic()


class VirtualClock:
    """Time that moves only when told to: for tests of delays, retries and expiry."""

    virtual = True

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, when: float) -> None:
        self._now = max(self._now, when)


Clock = Union[SystemClock, VirtualClock]


@dataclass
class _StoredState:
    value: bytes
    touched: float  # when the expiry timer last restarted


@dataclass
class _Batch:
    address: Address
    spec: FunctionSpec
    envelopes: List[Envelope]
    request: bytes
    started: float
    attempts: int = 0
    retry_at: float = 0.0


@dataclass(order=True)
class _Delayed:
    due: float
    sequence: int
    envelope: Envelope = field(compare=False)


Listener = Callable[[str, Dict[str, object]], None]


class LocalRuntime:
    """Delivers messages to functions the way StateFun does; see the module docstring.

    :param functions: the function specs by type (what ``module.yaml`` declares).
    :param transport: how batches reach the functions (``InProcessTransport`` or
        ``HttpTransport``).
    :param clock: ``VirtualClock()`` (tests; time moves with :meth:`advance`) or
        ``SystemClock()`` (real time).
    :param egresses: egress ids that may be written to; ``None`` accepts any.
    :param concurrency: batches in flight at once across addresses (HTTP transport).
    :param listener: called as ``listener(event, fields)`` for every message,
        delayed message, egress record and state change (for printing what flows).

    Build one with :meth:`for_functions` (in process) or :meth:`from_module_yaml`.
    """

    def __init__(
        self,
        functions: Dict[str, FunctionSpec],
        transport: Transport,
        *,
        clock: Optional[Clock] = None,
        egresses: Optional[List[str]] = None,
        concurrency: int = 1,
        listener: Optional[Listener] = None,
    ) -> None:
        self.functions = dict(functions)
        self.transport = transport
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.egress_ids = None if egresses is None else frozenset(egresses)
        self.listener = listener
        self._condition = threading.Condition()
        self._backlogs: Dict[Address, Deque[Envelope]] = {}
        self._ready: Deque[Address] = deque()  # addresses with a backlog and nothing in flight
        self._in_flight: Dict[Address, _Batch] = {}
        self._completed: Deque[Tuple[_Batch, Optional[bytes], Optional[TransportError]]] = deque()
        self._retries: List[Tuple[float, int, _Batch]] = []
        self._delayed: List[_Delayed] = []
        self._sequence = itertools.count()
        self._states: Dict[Address, Dict[str, _StoredState]] = {}
        self._egress: Dict[str, List[EgressRecord]] = {}
        self._failure: Optional[FunctionCallFailedError] = None
        self._pool = ThreadPoolExecutor(concurrency, "statefun-local") if concurrency > 1 else None
        self.batches_sent = 0

    # -- construction --------------------------------------------------------------

    @classmethod
    def for_functions(
        cls,
        functions: StatefulFunctions,
        *,
        module_yaml: Union[str, Path, ModuleSpec, None] = None,
        clock: Optional[Clock] = None,
        listener: Optional[Listener] = None,
    ) -> LocalRuntime:
        """Run ``functions`` in this process, with a virtual clock by default.

        Registered states come from ``module_yaml`` when given, else from the
        states each function declares with ``bind(..., states=[...])``.
        """
        handler = RequestReplyHandler(functions)
        if module_yaml is not None:
            module = module_yaml if isinstance(module_yaml, ModuleSpec) else load_module_yaml(module_yaml)
            specs = dict(module.functions)
            egresses = [egress.id for egress in module.egresses] or None
        else:
            specs = {
                function.typename: FunctionSpec(
                    function.typename, "in-process://", tuple(StateSpec(name) for name in function.states or ())
                )
                for function in functions
            }
            egresses = None
        return cls(specs, InProcessTransport(handler), clock=clock, egresses=egresses, listener=listener)

    @classmethod
    def from_module_yaml(
        cls,
        path: Union[str, Path, ModuleSpec],
        *,
        endpoint: Optional[str] = None,
        transport: Optional[Transport] = None,
        clock: Optional[Clock] = None,
        concurrency: int = 8,
        listener: Optional[Listener] = None,
    ) -> LocalRuntime:
        """Drive the functions a ``module.yaml`` declares, over HTTP by default.

        ``endpoint`` replaces every function's endpoint (e.g. a local gunicorn).
        """
        module = path if isinstance(path, ModuleSpec) else load_module_yaml(path)
        specs = dict(module.functions)
        if endpoint is not None:
            specs = {name: replace(spec, endpoint=endpoint) for name, spec in specs.items()}
        return cls(
            specs,
            transport if transport is not None else HttpTransport(),
            clock=clock if clock is not None else SystemClock(),
            egresses=[egress.id for egress in module.egresses] or None,
            concurrency=concurrency,
            listener=listener,
        )

    # -- the testing API -----------------------------------------------------------

    def send(
        self, typename: str, id: str, message: Union[Message, Any], *, caller: Optional[Address] = None
    ) -> None:
        """Deliver ``message`` (a protobuf message, or an ``Any``) to ``typename``/``id``,
        as an ingress does (no caller) unless ``caller`` is given."""
        namespace, name = split_typename(typename)
        if typename not in self.functions:
            raise ConfigurationError(f"no function type {typename} here (known: {', '.join(sorted(self.functions))})")
        argument = message if isinstance(message, Any) else pack_any(message)
        with self._condition:
            self._enqueue(Envelope(Address(namespace, name, id), argument, caller))
            self._condition.notify_all()

    def run_until_idle(self, *, timeout: Optional[float] = 60.0, include_delayed: bool = False) -> None:
        """Process until no message is waiting or in flight.

        Delayed messages that are not due yet are left for :meth:`advance`, unless
        ``include_delayed`` (real clock only) waits for them too. Raises
        :class:`FunctionCallFailedError` on a failure, ``TimeoutError`` after
        ``timeout`` seconds of real time.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._condition:
                self._raise_failure()
                self._release_due()
                work = self._dispatch_locked()
                idle = not (self._ready or self._in_flight or self._completed or self._retries)
                if idle and (not include_delayed or not self._delayed):
                    return
                if idle and isinstance(self.clock, VirtualClock):  # include_delayed: jump to the next one
                    self.clock.advance_to(self._delayed[0].due)
                    continue
            if work:
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the local runtime was not idle after {timeout} s")
            self._wait(deadline)

    def serve(self, stop: threading.Event) -> None:
        """Keep delivering (new messages, delayed ones when due) until ``stop`` is set.

        Raises :class:`FunctionCallFailedError` when a batch fails for good.
        """
        while not stop.is_set():
            self.run_until_idle(timeout=None)
            self._wait(None)

    def advance(self, delta: timedelta) -> None:
        """Move the virtual clock forward by ``delta``, delivering delayed messages
        in order of their due time and expiring state on the way."""
        if not self.clock.virtual:
            raise ConfigurationError("advance() needs a VirtualClock; this runtime runs on real time")
        assert isinstance(self.clock, VirtualClock)
        target = self.clock.now() + delta.total_seconds()
        self.run_until_idle()
        while self._delayed and self._delayed[0].due <= target:
            self.clock.advance_to(self._delayed[0].due)
            self.run_until_idle()
        self.clock.advance_to(target)
        self.run_until_idle()

    def egress(self, typename: str) -> List[EgressRecord]:
        """The records written to egress ``typename`` so far, in order."""
        with self._condition:
            return list(self._egress.get(typename, ()))

    def state(
        self, typename: str, id: str, name: str, message_type: Optional[Type[M]] = None
    ) -> Union[None, Any, M]:
        """The stored value of state ``name`` of ``typename``/``id`` (``None`` when
        absent or expired), as an ``Any``, or unpacked into ``message_type``."""
        namespace, type_name = split_typename(typename)
        address = Address(namespace, type_name, id)
        with self._condition:
            spec = self._spec(address)
            state_spec = next((s for s in spec.states if s.name == name), None)
            if state_spec is None:
                raise KeyError(f"{typename} has no registered state {name!r}")
            stored = self._live_state(address, state_spec)
        if stored is None:
            return None
        value = Any.FromString(stored.value)
        if message_type is None:
            return value
        if type_name_of_url(value.type_url) != message_type.DESCRIPTOR.full_name:
            raise UnexpectedMessageTypeError(f"state {name!r} holds a {value.type_url!r}")
        return message_type.FromString(value.value)

    @property
    def pending_delayed(self) -> int:
        """How many delayed messages are waiting for their time."""
        with self._condition:
            return len(self._delayed)

    def close(self) -> None:
        """Stop the worker threads and close the transport's connections (HTTP transport)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scheduling (all under self._condition) -------------------------------------

    def _spec(self, address: Address) -> FunctionSpec:
        typename = f"{address.namespace}/{address.type}"
        try:
            return self.functions[typename]
        except KeyError:
            known = ", ".join(sorted(self.functions)) or "none"
            raise KeyError(f"no function type {typename} here (known: {known})") from None

    def _enqueue(self, envelope: Envelope) -> None:
        backlog = self._backlogs.get(envelope.target)
        if backlog is None:
            backlog = self._backlogs[envelope.target] = deque()
        if not backlog and envelope.target not in self._in_flight:
            self._ready.append(envelope.target)
        backlog.append(envelope)
        self._emit("message", target=envelope.target, caller=envelope.caller, argument=envelope.argument)

    def _release_due(self) -> None:
        now = self.clock.now()
        while self._delayed and self._delayed[0].due <= now:
            self._enqueue(heapq.heappop(self._delayed).envelope)

    def _dispatch_locked(self) -> bool:
        """Start batches and apply finished ones; True if anything happened."""
        progressed = False
        now = self.clock.now()
        while self._retries and self._retries[0][0] <= now:
            _, _, batch = heapq.heappop(self._retries)
            self._start(batch)
            progressed = True
        while self._ready:
            address = self._ready.popleft()
            self._start(self._new_batch(address))
            progressed = True
        while self._completed:
            batch, reply, error = self._completed.popleft()
            self._finish(batch, reply, error)
            progressed = True
        return progressed

    def _new_batch(self, address: Address) -> _Batch:
        spec = self._spec(address)
        backlog = self._backlogs[address]
        envelopes = [backlog.popleft() for _ in range(min(len(backlog), spec.max_batch_size))]
        request = ToFunction()
        batch = request.invocation
        batch.target.namespace, batch.target.type, batch.target.id = address
        for state_spec in spec.states:
            stored = self._live_state(address, state_spec)
            if stored is not None and state_spec.expire_mode == "after-invoke":
                stored.touched = self.clock.now()
            batch.state.add(state_name=state_spec.name, state_value=b"" if stored is None else stored.value)
        for envelope in envelopes:
            invocation = batch.invocations.add(argument=envelope.argument)
            if envelope.caller is not None:
                caller = invocation.caller
                caller.namespace, caller.type, caller.id = envelope.caller
        return _Batch(address, spec, envelopes, request.SerializeToString(), self.clock.now())

    def _live_state(self, address: Address, state_spec: StateSpec) -> Optional[_StoredState]:
        states = self._states.get(address)
        stored = states.get(state_spec.name) if states else None
        if stored is not None and state_spec.expire_after is not None:
            if self.clock.now() - stored.touched >= state_spec.expire_after.total_seconds():
                del states[state_spec.name]  # type: ignore[union-attr]
                self._emit("state", address=address, name=state_spec.name, value=None, expired=True)
                return None
        return stored

    def _start(self, batch: _Batch) -> None:
        self._in_flight[batch.address] = batch
        batch.attempts += 1
        self.batches_sent += 1
        if self._pool is None:
            self._completed.append(self._call(batch))
        else:
            future = self._pool.submit(self._call, batch)
            future.add_done_callback(self._on_done)

    def _call(self, batch: _Batch) -> Tuple[_Batch, Optional[bytes], Optional[TransportError]]:
        try:
            return batch, self.transport(batch.spec, batch.request), None
        except TransportError as error:
            return batch, None, error
        except Exception as error:  # a transport bug must not hang the runtime
            return batch, None, TransportError(f"{type(error).__name__}: {error}", retryable=False)

    def _on_done(self, future: Future) -> None:  # type: ignore[type-arg]
        with self._condition:
            self._completed.append(future.result())
            self._condition.notify_all()

    def _finish(self, batch: _Batch, reply: Optional[bytes], error: Optional[TransportError]) -> None:
        if error is not None:
            elapsed = self.clock.now() - batch.started
            backoff = FIRST_BACKOFF * (2 ** (batch.attempts - 1))
            if error.retryable and elapsed + backoff <= batch.spec.timeout.total_seconds():
                logger.warning("retrying %s in %.0f ms: %s", _name(batch.address), backoff * 1000, error.reason)
                heapq.heappush(self._retries, (self.clock.now() + backoff, next(self._sequence), batch))
                return
            if error.retryable:
                reason = f"retries ran out after {batch.attempts} attempts over the {batch.spec.timeout} timeout: "
                reason += error.reason
            else:
                reason = error.reason
            self._fail(batch, reason)
            return
        assert reply is not None
        try:
            self._apply(batch, reply)
        except _ReplyRejected as rejected:
            self._fail(batch, str(rejected))

    def _fail(self, batch: _Batch, reason: str) -> None:
        # Keep the batch unapplied and the address blocked: as a failed job, nothing moves.
        self._failure = FunctionCallFailedError(batch.address, reason)
        logger.error("%s", self._failure)
        self._condition.notify_all()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _apply(self, batch: _Batch, reply: bytes) -> None:
        response = FromFunction()
        try:
            response.ParseFromString(reply)
        except DecodeError as exc:
            raise _ReplyRejected(f"the reply is not a FromFunction: {exc}") from None
        result = response.invocation_result
        address = batch.address
        # Validate everything first: the reply is applied all together or not at all.
        for message in result.outgoing_messages:
            self._check_target(message.target)
        for delayed in result.delayed_invocations:
            self._check_target(delayed.target)
            if delayed.delay_in_ms < 0:
                raise _ReplyRejected(f"a delayed message has a negative delay ({delayed.delay_in_ms} ms)")
        for egress in result.outgoing_egresses:
            egress_id = f"{egress.egress_namespace}/{egress.egress_type}"
            if self.egress_ids is not None and egress_id not in self.egress_ids:
                raise _ReplyRejected(f"egress {egress_id} is not declared in module.yaml")
        registered = {state.name: state for state in batch.spec.states}
        for mutation in result.state_mutations:
            if mutation.state_name not in registered:
                raise _ReplyRejected(
                    f"the reply changes state {mutation.state_name!r}, which module.yaml does not register"
                )

        now = self.clock.now()
        for message in result.outgoing_messages:
            target = message.target
            self._enqueue(Envelope(Address(target.namespace, target.type, target.id), message.argument, address))
        for delayed in result.delayed_invocations:
            target = delayed.target
            envelope = Envelope(Address(target.namespace, target.type, target.id), delayed.argument, address)
            heapq.heappush(self._delayed, _Delayed(now + delayed.delay_in_ms / 1000, next(self._sequence), envelope))
            self._emit("delayed", target=envelope.target, caller=address, argument=envelope.argument,
                       delay_ms=delayed.delay_in_ms)
        for egress in result.outgoing_egresses:
            record = EgressRecord(f"{egress.egress_namespace}/{egress.egress_type}", egress.argument)
            self._egress.setdefault(record.egress, []).append(record)
            self._emit("egress", record=record)
        if result.state_mutations:
            states = self._states.setdefault(address, {})
            for mutation in result.state_mutations:
                if mutation.mutation_type == _MODIFY:
                    states[mutation.state_name] = _StoredState(mutation.state_value, now)
                    self._emit("state", address=address, name=mutation.state_name,
                               value=Any.FromString(mutation.state_value))
                else:
                    states.pop(mutation.state_name, None)
                    self._emit("state", address=address, name=mutation.state_name, value=None)
        # Only now is the address free: messages it sent itself above joined its backlog
        # (and must not make it ready a second time, which would start an empty batch).
        del self._in_flight[address]
        if self._backlogs.get(address):
            self._ready.append(address)

    def _check_target(self, target: object) -> None:
        typename = f"{target.namespace}/{target.type}"  # type: ignore[attr-defined]
        if typename not in self.functions:
            raise _ReplyRejected(f"the reply sends a message to {typename}, which no module.yaml function declares")

    def _wait(self, deadline: Optional[float]) -> None:
        """Sleep (real clock) or jump (virtual clock) to the next thing that can happen."""
        with self._condition:
            if self._completed or self._ready or self._failure:
                return
            next_times = [entry[0] for entry in self._retries[:1]] + [d.due for d in self._delayed[:1]]
            if self.clock.virtual:
                # A batch waiting for its retry stays in _in_flight (its address is blocked),
                # so only wait for calls when some batch is not merely waiting for a retry.
                if len(self._in_flight) > len(self._retries):
                    self._condition.wait(0.05)
                elif self._retries:  # the runtime spends this time retrying
                    assert isinstance(self.clock, VirtualClock)
                    self.clock.advance_to(self._retries[0][0])
                return
            timeout = 0.5
            if next_times:
                timeout = min(timeout, max(0.0, min(next_times) - self.clock.now()))
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            self._condition.wait(timeout)

    def _emit(self, event: str, **fields: object) -> None:
        if self.listener is not None:
            try:
                self.listener(event, fields)
            except Exception:
                logger.exception("the local runtime's listener failed")


class _ReplyRejected(Exception):
    """A reply the runtime would refuse (and fail the job on)."""


def _name(address: Address) -> str:
    return f"{address.namespace}/{address.type}/{address.identity}"

