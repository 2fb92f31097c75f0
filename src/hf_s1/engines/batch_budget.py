"""The budget state machine of `hf_s1.budget.BudgetTracker`, for a whole batch at once, in torch tensors.

`BudgetTracker` is the specification: one sequence, plain Python. Serving engines need the same rules for hundreds
of rows per step without per-row Python and without reading device memory from the host, so `BatchBudget` keeps
every slot's state in tensors (on the engine's device) and advances all rows with a few vectorised ops. The rules
are not restated here: each method names the `BudgetTracker` method it mirrors, and `tests/test_batch_budget.py`
checks, over thousands of random token streams, that both take the same decisions and count the same telemetry.

How an adapter drives it, per engine step:

1. `commit(slots, tokens, active)`: the tokens the engine appended since the last step. The decision taken for each
   of them (`propose`) is replayed from its stored outcome, then the token is observed. Only committed tokens ever
   change the stored state, so discarded rows (chunked prefill, rejected drafts, preempted requests) cost nothing.
2. `propose(logits, slots, ...)`: decide every row's next token on a copy of its state — force it, or intercept an
   end of thinking (greedy: it is the arg-max; sampled: a uniform draw falls below its probability) — store the
   outcome for `commit`, and write the decision into the logits in place.

A request that enters with output already generated (preempted, then resumed) is read with `resume`: the
specification replays that output on the host and its state is written into the slot at once.

Two rules an engine adds around the state machine live in `propose`:

- A forced token is lifted above the rest of its row (the row's maximum plus a margin that survives any
  temperature) instead of masking the row, so no logit an earlier stage set to `-inf` is ever raised: a forced
  token that an earlier stage forbade (a grammar, bad words) is not forced; the row keeps the earlier stage's
  logits, the model's token overrides the forced run (as in `BudgetTracker`) and the decision is taken again at
  the next step: a cut is deferred until the grammar allows it. An intercepted end whose replacement is forbidden
  is banned instead of replaced.
- Sampled rows draw their decision from a counter-based hash of the request's seed and the token's position, so
  a seeded request is reproducible whatever its batch; unseeded rows may use torch's global generator.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, fields

import torch

from ..budget import BudgetError, BudgetTracker, MarkerTokens, ThinkingBudget, TokenKind
from . import fused as _fused

__all__ = ["BatchBudget", "KINDS", "SlotSpec"]

# Phases, as in budget._Phase.
BEFORE, THINKING, ANSWER, DONE = 0, 1, 2, 3
# Token kinds: KINDS[i] is the TokenKind of code i.
KINDS = (TokenKind.MARKER, TokenKind.THINKING, TokenKind.EXTRAPOLATION, TokenKind.CUT, TokenKind.ANSWER,
         TokenKind.STOP, TokenKind.AFTER_STOP)
MARKER, THINK, EXTRAP, CUT, ANSWER_K, STOP, AFTER_STOP = range(7)
# Rows of each slot's table of forced sequences.
SEQ_START, SEQ_END, SEQ_CUT_NL, SEQ_CUT, SEQ_EOS, SEQ_EXTRAP = 0, 1, 2, 3, 4, 5

_NO_LIMIT = 1 << 62
_CERTAIN = 1.0 - 1e-6  # probability mass above which a draw would almost surely attempt
_MASK32 = 0xFFFFFFFF


@dataclass
class SlotSpec:
    """What a slot needs to know about its request (host side, set when the request enters)."""

    budget: ThinkingBudget
    markers: MarkerTokens
    greedy: bool = True
    seed: int | None = None


@dataclass
class _State:
    """The mutable per-row state: one entry per slot (stored) or per logits row (a working copy)."""

    phase: torch.Tensor
    qseq: torch.Tensor  # forced run being written: a row of the slot's sequence table...
    qpos: torch.Tensor  # ...its next position...
    qlen: torch.Tensor  # ...and its length (qpos == qlen: nothing queued)
    qkind: torch.Tensor
    tail: torch.Tensor  # [n, T] the last T tokens (-1 where none), for marker detection
    thinking: torch.Tensor
    answer: torch.Tensor
    waits: torch.Tensor
    capped: torch.Tensor
    finished: torch.Tensor
    n_gen: torch.Tensor
    round: torch.Tensor  # s1 profile: model tokens since thinking began or since the last extrapolation

    def index(self, idx: torch.Tensor) -> _State:
        return _State(*(getattr(self, f.name)[idx] for f in fields(self)))

    def put_(self, idx: torch.Tensor, other: _State) -> None:
        for f in fields(self):
            getattr(self, f.name)[idx] = getattr(other, f.name)

    def where(self, mask: torch.Tensor, other: _State) -> _State:
        """`other` where `mask`, else self."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            out.append(torch.where(mask.view(-1, *([1] * (a.dim() - 1))), b, a))
        return _State(*out)


def _uniform(seed: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """A uniform float in [0, 1) from (seed, position), the same on every device (integer hash, low 32 bits)."""

    def mix(x: torch.Tensor) -> torch.Tensor:  # "lowbias32" (Wellons); products wrap, the mask keeps 32 bits
        x = x ^ (x >> 16)
        x = (x * 0x7FEB352D) & _MASK32
        x = x ^ (x >> 15)
        x = (x * 0x846CA68B) & _MASK32
        return x ^ (x >> 16)

    lo, hi = seed & _MASK32, (seed >> 32) & _MASK32
    x = mix(mix(lo ^ mix(hi + 0x9E3779B9)) ^ (position & _MASK32))
    return (x >> 8).float() / float(1 << 24)


class BatchBudget:
    """Budget-forcing state for `num_slots` request slots, held in tensors on `device`.

    Args:
        num_slots: how many requests can be tracked at once (vLLM's `max_num_reqs`, a batch size).
        device: where the state lives (the logits' device).
        lookahead: decisions stored per slot beyond the first (speculative decoding's draft tokens).
        log_injections: keep, per slot and generated position, whether an intercepted end was replaced there (an
            extrapolation injected, or the end marker written for an end of sequence):
            the engine's own record of its decisions, from which `BudgetTracker.replay` rebuilds exact telemetry
            (a "Wait" the model wrote itself is never taken for an injected one), and from which `resume` replays
            a resumed request's decisions (`restore_log` gives the slot its old positions back).
        log_length: generated positions the injection log holds from the start (it grows with `reserve_log`).
        fused: run each step compiled (`hf_s1.engines.fused`: the same methods through `torch.compile`). Default:
            the `HF_S1_FUSED` environment variable, else fused on CUDA and eager elsewhere.

    Examples:

    ```python
    >>> import torch
    >>> from hf_s1.budget import MarkerTokens, ThinkingBudget
    >>> from hf_s1.engines.batch_budget import BatchBudget, SlotSpec
    >>> vocab = {"Wait": 5, "A:": 6}
    >>> markers = MarkerTokens(think_start=(1, 2), think_end=(1, 3), before_end=(4,), after_end=(4,),
    ...     stop_ids=(0,), ends_with_before_end=frozenset({4}), encode=lambda s: [vocab[s]])
    >>> core = BatchBudget(2)
    >>> core.set_slots([0, 1], [SlotSpec(ThinkingBudget(num_waits=1, answer_prefix="A:"), markers),
    ...                         SlotSpec(ThinkingBudget(max_thinking_tokens=0, answer_prefix="A:"), markers)])
    >>> core.start([0, 1], torch.tensor([[9, 1, 2], [9, 1, 2]]))   # both prompts end with the start marker
    >>> logits = torch.zeros(2, 10)
    >>> logits[:, 0] = 1.0                                           # both rows would end right away
    >>> slots, active = torch.tensor([0, 1]), torch.tensor([True, True])
    >>> _ = core.propose(logits, slots, active)
    >>> logits.argmax(dim=-1).tolist()                               # row 0: "Wait"; row 1: the cut's newline
    [5, 4]
    >>> core.commit(slots, torch.tensor([5, 4])).tolist()            # kind codes: extrapolation, cut
    [2, 3]

    ```
    """

    def __init__(self, num_slots: int, device: torch.device | str = "cpu", *, lookahead: int = 0,
                 log_injections: bool = False, log_length: int = 64, fused: bool | None = None) -> None:
        self.num_slots = num_slots
        self.device = torch.device(device)
        self.fused = _fused.fused_by_default(self.device) if fused is None else bool(fused)
        self._layout = 0  # bumped when a table is reallocated (the fused path marks the new tensors' sizes)
        self.lookahead = lookahead
        self.specs: list[SlotSpec | None] = [None] * num_slots
        self._seq_rows: list[tuple[tuple[int, ...], ...] | None] = [None] * num_slots  # host copy of seqs rows
        # Slots that follow the s1 profile (host side): without any, a step skips the profile's ops.
        self._s1_slots: set[int] = set()
        # Whether a step runs the s1 profile's ops: only with s1-profile slots in eager mode (`bool(self._s1_slots)`,
        # decided on the host), always when fused (no compiled variant per mix of profiles; the ops are no-ops
        # on other rows).
        self._any_s1 = self.fused
        # The same for plain-text end markers (MarkerTokens.end_is_text): their ops run only when a slot has one.
        self._text_slots: set[int] = set()
        self._any_text = self.fused
        self._formats: dict[MarkerTokens, int] = {}
        # Table widths grow in powers of two from a floor that fits common formats and budgets: a compiled step
        # is specialised to its tables' widths, so a width compiles again only when it crosses a power of two
        # (unused entries are masked, as for any shorter marker or sequence).
        self._tail_len = 4
        self._seq_len = 16
        self._num_seqs = 8
        self._num_stops = 4
        self._vocab = 2
        self.ends_with_newline = torch.zeros(4, 2, dtype=torch.bool, device=self.device)
        self._alloc_tables()
        self.state = self._empty_state(num_slots)
        self.pending_hit = torch.zeros(num_slots, lookahead + 1, dtype=torch.bool, device=self.device)
        self.pending_base = torch.full((num_slots,), -1, dtype=torch.long, device=self.device)
        self.log_injections = log_injections
        # [slots, positions + 1]: the last column takes the writes of inactive rows (never read).
        width = log_length + 1 if log_injections else 0
        self.injected = torch.zeros(num_slots, width, dtype=torch.bool, device=self.device)
        self._whole = torch.arange(num_slots, device=self.device)

    # ---- tables -----------------------------------------------------------------------------------------------

    def _zeros(self, *shape: int, dtype=torch.long) -> torch.Tensor:
        return torch.zeros(*shape, dtype=dtype, device=self.device)

    def _alloc_tables(self) -> None:
        s, t, n, l, k = self.num_slots, self._tail_len, self._num_seqs, self._seq_len, self._num_stops
        old = getattr(self, "_tables", None)
        self._tables = dict(
            seqs=self._zeros(s, n, l), lens=self._zeros(s, n),
            start_r=torch.full((s, t), -2, dtype=torch.long, device=self.device),
            end_r=torch.full((s, t), -2, dtype=torch.long, device=self.device),
            start_m=self._zeros(s, t, dtype=torch.bool), end_m=self._zeros(s, t, dtype=torch.bool),
            # a plain-text end marker (MarkerTokens.end_is_text): all but its last token, right-aligned, and that token
            end_head_r=torch.full((s, t), -2, dtype=torch.long, device=self.device),
            end_head_m=self._zeros(s, t, dtype=torch.bool), end_text=self._zeros(s, dtype=torch.bool),
            end_last=self._zeros(s), end_len=torch.ones(s, dtype=torch.long, device=self.device),
            end0=self._zeros(s), stops=self._zeros(s, k), stops_u=self._zeros(s, k, dtype=torch.bool),
            max_think=self._zeros(s), min_think=self._zeros(s), num_waits=self._zeros(s), max_answer=self._zeros(s),
            n_extrap=torch.ones(s, dtype=torch.long, device=self.device), fmt=self._zeros(s),
            greedy=torch.ones(s, dtype=torch.bool, device=self.device), seeded=self._zeros(s, dtype=torch.bool),
            seed=self._zeros(s), s1=self._zeros(s, dtype=torch.bool),
        )
        if old is not None:  # keep what the slots already hold: copy into the grown tables
            for name, new in self._tables.items():
                src = old[name]
                if src.dim() == 1:
                    new.copy_(src)
                elif name in ("start_r", "end_r", "start_m", "end_m", "end_head_r", "end_head_m"):  # right-aligned
                    new[:, new.shape[1] - src.shape[1]:] = src
                elif name == "stops":  # unused columns repeat the first stop id
                    new[:] = src[:, :1]
                    new[:, : src.shape[1]] = src
                else:
                    new[tuple(slice(0, d) for d in src.shape)] = src
        for name, value in self._tables.items():
            setattr(self, name, value)
        self._layout = getattr(self, "_layout", 0) + 1

    def _empty_state(self, n: int) -> _State:
        z = lambda: self._zeros(n)  # noqa: E731
        return _State(phase=torch.full((n,), DONE, dtype=torch.long, device=self.device), qseq=z(), qpos=z(), qlen=z(),
                      qkind=z(), tail=torch.full((n, self._tail_len), -1, dtype=torch.long, device=self.device),
                      thinking=z(), answer=z(), waits=z(), capped=self._zeros(n, dtype=torch.bool),
                      finished=self._zeros(n, dtype=torch.bool), n_gen=z(), round=z())

    def _format_index(self, markers: MarkerTokens) -> int:
        if markers not in self._formats:
            ids = sorted(markers.ends_with_before_end)
            vocab = max(self._vocab, (ids[-1] + 1) if ids else 1)
            row = len(self._formats)
            rows = _bucket(max(self.ends_with_newline.shape[0], row + 1))
            vocab = _bucket(vocab)
            table = torch.zeros(rows, vocab, dtype=torch.bool, device=self.device)
            table[: self.ends_with_newline.shape[0], : self.ends_with_newline.shape[1]] = self.ends_with_newline
            if ids:
                table[row, torch.tensor(ids, device=self.device)] = True
            self.ends_with_newline, self._vocab = table, vocab
            self._layout += 1
            self._formats[markers] = row
        return self._formats[markers]

    # ---- slots ------------------------------------------------------------------------------------------------

    def set_slots(self, slots: Sequence[int], specs: Sequence[SlotSpec]) -> None:
        """Give `slots` their requests (host work, one copy per table). Call `start` before using them."""
        rows = []
        for spec in specs:
            m, b = spec.markers, spec.budget
            prefix = m.encode_budget_string(b.answer_prefix, "answer_prefix")
            extraps = [m.encode_budget_string(text, "extrapolation") for text in b.extrapolation]
            if b.is_auto:
                raise BudgetError('max_thinking_tokens="auto" must be resolved for the call (ThinkingBudget.resolve).')
            seqs = [m.think_start, m.think_end, m.before_end + m.think_end + m.after_end + tuple(prefix),
                    m.think_end + m.after_end + tuple(prefix), m.stop_ids[:1], *extraps]
            stops = list(dict.fromkeys(m.stop_ids))
            rows.append((spec, seqs, stops))
        tail = _bucket(max([self._tail_len] + [max(len(s.markers.think_start), len(s.markers.think_end)) for s in specs]))
        n_seq = _bucket(max([self._num_seqs] + [len(r[1]) for r in rows]))
        seq_len = _bucket(max([self._seq_len] + [len(q) for r in rows for q in r[1]]))
        n_stop = _bucket(max([self._num_stops] + [len(r[2]) for r in rows]))
        if (tail, n_seq, seq_len, n_stop) != (self._tail_len, self._num_seqs, self._seq_len, self._num_stops):
            grow_tail = tail - self._tail_len
            self._tail_len, self._num_seqs, self._seq_len, self._num_stops = tail, n_seq, seq_len, n_stop
            self._alloc_tables()
            if grow_tail:
                pad = torch.full((self.num_slots, grow_tail), -1, dtype=torch.long, device=self.device)
                self.state.tail = torch.cat([pad, self.state.tail], dim=1)
        n, t = len(rows), self._tail_len
        seqs = torch.zeros(n, n_seq, seq_len, dtype=torch.long)
        lens = torch.zeros(n, n_seq, dtype=torch.long)
        start_r = torch.full((n, t), -2, dtype=torch.long)
        end_r = torch.full((n, t), -2, dtype=torch.long)
        end_head_r = torch.full((n, t), -2, dtype=torch.long)
        stops = torch.zeros(n, n_stop, dtype=torch.long)
        stops_u = torch.zeros(n, n_stop, dtype=torch.bool)
        scalars = {name: [] for name in ("end0", "end_text", "end_last", "end_len", "max_think", "min_think",
                                         "num_waits", "max_answer", "n_extrap", "fmt",
                                         "greedy", "seeded", "seed", "s1")}
        for i, (spec, seq_list, stop_list) in enumerate(rows):
            m, b = spec.markers, spec.budget
            for j, q in enumerate(seq_list):
                seqs[i, j, : len(q)] = torch.tensor(q, dtype=torch.long)
                lens[i, j] = len(q)
            start_r[i, t - len(m.think_start):] = torch.tensor(m.think_start)
            end_r[i, t - len(m.think_end):] = torch.tensor(m.think_end)
            if m.end_is_text:
                end_head_r[i, t - len(m.think_end) + 1:] = torch.tensor(m.think_end[:-1])
            stops[i, :] = stop_list[0]
            stops[i, : len(stop_list)] = torch.tensor(stop_list)
            stops_u[i, : len(stop_list)] = True
            cap = b.max_thinking_tokens
            values = dict(end0=m.think_end[0], end_text=m.end_is_text, end_last=m.think_end[-1],
                          end_len=len(m.think_end), max_think=_NO_LIMIT if cap is None else cap,
                          min_think=b.min_thinking_tokens, num_waits=b.num_waits,
                          max_answer=_NO_LIMIT if b.max_answer_tokens is None else b.max_answer_tokens,
                          n_extrap=len(b.extrapolation), fmt=self._format_index(m), greedy=spec.greedy,
                          seeded=spec.seed is not None, seed=0 if spec.seed is None else int(spec.seed) & ((1 << 63) - 1),
                          s1=b.profile == "s1")
            for name, v in values.items():
                scalars[name].append(v)
            self.specs[slots[i]] = spec
            self._seq_rows[slots[i]] = tuple(tuple(q) for q in seq_list)
            (self._s1_slots.add if b.profile == "s1" else self._s1_slots.discard)(slots[i])
            (self._text_slots.add if m.end_is_text else self._text_slots.discard)(slots[i])
        self._any_s1 = self.fused or bool(self._s1_slots)
        self._any_text = self.fused or bool(self._text_slots)
        idx = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        dev = self.device
        self.seqs[idx] = seqs.to(dev)
        self.lens[idx] = lens.to(dev)
        self.start_r[idx] = start_r.to(dev)
        self.end_r[idx] = end_r.to(dev)
        self.start_m[idx] = start_r.ge(0).to(dev)
        self.end_m[idx] = end_r.ge(0).to(dev)
        self.end_head_r[idx] = end_head_r.to(dev)
        self.end_head_m[idx] = end_head_r.ge(0).to(dev)
        self.stops[idx] = stops.to(dev)
        self.stops_u[idx] = stops_u.to(dev)
        for name, values in scalars.items():
            table = getattr(self, name)
            table[idx] = torch.tensor(values, dtype=table.dtype).to(dev)
        self.pending_base[idx] = -1
        if self.log_injections:
            self.injected[idx] = False

    def add_slots(self, n: int) -> None:
        """Grow to `num_slots + n` slots (the new ones empty, as `release` leaves a slot); the others keep their
        state. For engines that cannot bound their requests up front (transformers' continuous batching)."""
        old_n = self.num_slots
        old_tables, old_state = self._tables, self.state
        self.num_slots += n
        del self._tables
        self._alloc_tables()
        for name, table in self._tables.items():
            table[:old_n] = old_tables[name]
        self.state = self._empty_state(self.num_slots)
        self.state.put_(torch.arange(old_n, device=self.device), old_state)

        def grown(t: torch.Tensor, fill) -> torch.Tensor:
            new = torch.full((self.num_slots, *t.shape[1:]), fill, dtype=t.dtype, device=self.device)
            new[:old_n] = t
            return new

        self.pending_hit = grown(self.pending_hit, False)
        self.pending_base = grown(self.pending_base, -1)
        self.injected = grown(self.injected, False)
        self._whole = torch.arange(self.num_slots, device=self.device)
        self.specs.extend([None] * n)
        self._seq_rows.extend([None] * n)

    def release(self, slots: Sequence[int]) -> None:
        """Forget the requests in `slots` (their state becomes inert)."""
        for s in slots:
            self.specs[s] = None
            self._seq_rows[s] = None
            self._s1_slots.discard(s)
            self._text_slots.discard(s)
        self._any_s1 = self.fused or bool(self._s1_slots)
        self._any_text = self.fused or bool(self._text_slots)
        if slots:
            idx = torch.tensor(list(slots), dtype=torch.long, device=self.device)
            self.state.phase[idx] = DONE
            self.state.qpos[idx] = 0
            self.state.qlen[idx] = 0

    # ---- start (BudgetTracker.start) --------------------------------------------------------------------------

    def start(self, slots: Sequence[int], prompts: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        """Read each slot's prompt as `budget.read_prompt` does: thinking open, closed (the answer begins) or not
        begun (the start marker is queued, completed when the prompt ends half-way into it).

        Args:
            slots: host list of slot indices, one per prompt row.
            prompts: [n, P] prompt ids on the device, right-aligned (a row's prompt is its last `lengths[i]` ids).
            lengths: [n] prompt lengths (default: all P).
        """
        n, width = prompts.shape
        idx = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        prompts = prompts.to(self.device, torch.long)
        if lengths is not None:
            cols = torch.arange(width, device=self.device)
            prompts = torch.where(cols >= (width - lengths.to(self.device).view(-1, 1)), prompts, -1)
        st = self._empty_state(n)
        thinking = torch.zeros(n, dtype=torch.bool, device=self.device)
        closed = torch.zeros(n, dtype=torch.bool, device=self.device)
        done = torch.zeros(n, dtype=torch.long, device=self.device)
        by_markers: dict[MarkerTokens, list[int]] = {}
        for i, s in enumerate(slots):
            by_markers.setdefault(self.specs[s].markers, []).append(i)
        for markers, rows in by_markers.items():
            r = torch.tensor(rows, dtype=torch.long, device=self.device)
            p = prompts[r]
            start = torch.tensor(markers.think_start, device=self.device)
            end = torch.tensor(markers.think_end, device=self.device)
            # budget.read_prompt: only the last turn counts (a turn-end inside the last end marker is the marker's)
            last_end = _last_match(p, end)
            cols = torch.arange(width, device=self.device)
            in_end = (last_end[:, None] >= 0) & (cols >= last_end[:, None]) & (cols < last_end[:, None] + len(end))
            turn_ids = torch.tensor(markers.turn_ends, device=self.device)
            is_turn = (p[:, :, None] == turn_ids).any(dim=2) & ~in_end
            turn = torch.where(is_turn, cols, -1).max(dim=1).values + 1
            last_start = _last_match(p, start)
            last_start = torch.where(last_start >= turn, last_start, -1)
            last_end = torch.where(last_end >= turn, last_end, -1)
            thinking[r] = (last_start >= 0) & (last_end < last_start)
            space = torch.tensor(sorted(markers.space_ids) or [-3], device=self.device)
            after = cols >= (last_end + len(end))[:, None]
            only_space = (~after | torch.isin(p, space)).all(dim=1)
            closed[r] = (last_end >= 0) & ~thinking[r] & only_space
            k_done = torch.zeros(len(rows), dtype=torch.long, device=self.device)
            for k in range(1, min(len(start) - 1, width) + 1):  # longest proper prefix the prompt ends with
                k_done = torch.where((p[:, width - k:] == start[:k]).all(dim=1), k, k_done)
            done[r] = k_done
        t = self._tail_len
        tail = prompts[:, -t:] if width >= t else torch.cat(
            [torch.full((n, t - width), -1, dtype=torch.long, device=self.device), prompts], dim=1)
        st.tail = tail
        st.phase = torch.where(thinking, THINKING, torch.where(closed, ANSWER, BEFORE))
        st.qseq = torch.full((n,), SEQ_START, dtype=torch.long, device=self.device)
        st.qpos = torch.where(thinking | closed, 0, done)
        st.qlen = torch.where(thinking | closed, 0, self.lens[idx, SEQ_START])
        st.qkind = torch.full((n,), MARKER, dtype=torch.long, device=self.device)
        self.state.put_(idx, st)
        self.pending_base[idx] = -1

    def resume(self, slots: Sequence[int], prompts: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]],
               injected: Sequence[Container[int] | None] | None = None) -> None:
        """`start` followed by a `commit` of every token in `outputs`, for requests that come back with output
        already generated (preempted, then resumed): each output is replayed on the host by the specification,
        `BudgetTracker.replay` (the decisions from `injected[i]`, the request's injection log, when there is one;
        else inferred, as `commit` infers them), and the trackers' state is written into the slots with one copy
        per field, instead of one device step per generated token.

        Args:
            slots: host list of slot indices (their requests set with `set_slots`).
            prompts: each request's prompt ids (host).
            outputs: each request's generated ids so far (host).
            injected: each request's injected positions (`BudgetTracker.replay`), or None where unknown.
        """
        trackers = []
        for i, (slot, prompt, output) in enumerate(zip(slots, prompts, outputs)):
            spec = self.specs[slot]
            tracker = BudgetTracker(spec.budget, spec.markers)
            tracker.start(prompt)
            tracker.replay(output, injected=None if injected is None else injected[i])
            trackers.append(tracker)
        self.load(slots, trackers)

    def load(self, slots: Sequence[int], trackers: Sequence[BudgetTracker]) -> None:
        """Write each tracker's state into its slot (given the same request with `set_slots`): the slot goes on
        from where the tracker stands, as if every token the tracker observed had been committed here."""
        t = self._tail_len
        rows: dict[str, list] = {f.name: [] for f in fields(_State)}
        for slot, tracker in zip(slots, trackers):
            snap, stats = tracker.snapshot(), tracker.stats
            qseq, qpos, qlen = self._queued_run(slot, snap.queued, snap.queued_kind)
            values = dict(phase=snap.phase, qseq=qseq, qpos=qpos, qlen=qlen,
                          qkind=MARKER if snap.queued_kind is None else KINDS.index(snap.queued_kind),
                          tail=[-1] * (t - len(snap.tail[-t:])) + list(snap.tail[-t:]), thinking=stats.thinking_tokens,
                          answer=stats.answer_tokens, waits=stats.waits, capped=stats.capped,
                          finished=stats.finished, n_gen=snap.generated, round=snap.round)
            for name, value in values.items():
                rows[name].append(value)
        st = _State(*(torch.tensor(rows[f.name], dtype=getattr(self.state, f.name).dtype).to(self.device)
                      for f in fields(_State)))
        idx = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        self.state.put_(idx, st)
        self.pending_base[idx] = -1

    def _queued_run(self, slot: int, queued: tuple[int, ...], kind: TokenKind | None) -> tuple[int, int, int]:
        """(sequence row, position, length) of the slot's forced sequence whose rest is `queued`."""
        if not queued:
            return 0, 0, 0
        if kind is None:
            raise RuntimeError(f"slot {slot}: the queued run {queued} mixes token kinds")
        for row, seq in enumerate(self._seq_rows[slot]):
            start = len(seq) - len(queued)
            if start >= 0 and seq[start:] == queued:
                return row, start, len(seq)
        raise RuntimeError(f"slot {slot}: the queued run {queued} is not the rest of any of its forced sequences")

    # ---- the state machine (BudgetTracker.next_action / intercept / observe) ---------------------------------

    def _head(self, slot: torch.Tensor, qseq: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        return self.seqs[slot, qseq, qpos.clamp(max=self._seq_len - 1)]

    def _must_extend(self, slot: torch.Tensor, st: _State) -> torch.Tensor:
        return (st.waits < self.num_waits[slot]) | (st.thinking < self.min_think[slot])

    def _replacement_seq(self, slot: torch.Tensor, st: _State, extend: torch.Tensor) -> torch.Tensor:
        end = SEQ_END
        if self._any_s1:  # s1 profile past the cap: end this pass (BudgetTracker.resume)
            end = torch.where(self.s1[slot] & (st.thinking > self.max_think[slot]), SEQ_EOS, SEQ_END)
        return torch.where(extend, SEQ_EXTRAP + st.waits % self.n_extrap[slot], end)

    def decide(self, slot: torch.Tensor, st: _State, active: torch.Tensor):
        """`BudgetTracker.next_action` for every active row. Returns the updated state and, per row, the forced
        id (-1: none), whether the row intercepts, whether an intercepted end would be extended, and whether the
        row bans the ends outright (s1 profile: the first token of a round)."""
        queued = st.qpos < st.qlen
        in_thinking = active & (st.phase == THINKING)
        marker_queued = queued & ((st.qkind == MARKER) | (st.qkind == CUT))
        cap = self.max_think[slot]
        cut = in_thinking & (st.thinking >= cap) & ~marker_queued
        end_pass = None
        if self._any_s1:
            s1 = self.s1[slot]
            round_limit = in_thinking & s1 & ~queued & (st.round >= cap)  # s1: the round's own length limit
            over = st.thinking > cap
            cut = (cut & ~s1) | (round_limit & ~over)
            end_pass = round_limit & over
        last = st.tail[:, -1]
        table = self.ends_with_newline
        ends_nl = table[self.fmt[slot], last.clamp(0, table.shape[1] - 1)] & (last >= 0) & (last < table.shape[1])
        cut_seq = torch.where(ends_nl, SEQ_CUT, SEQ_CUT_NL)
        restart = active & (st.phase == BEFORE) & ~queued  # a forced start marker was overridden: write it again
        new_seq = torch.where(cut, cut_seq, SEQ_START)
        set_queue = cut | restart
        kind = torch.where(restart, MARKER, st.qkind)
        if end_pass is not None:
            new_seq = torch.where(end_pass, SEQ_EOS, new_seq)
            set_queue = set_queue | end_pass
            kind = torch.where(end_pass, STOP, kind)
        qseq = torch.where(set_queue, new_seq, st.qseq)
        qpos = torch.where(set_queue, 0, st.qpos)
        qlen = torch.where(set_queue, self.lens[slot, new_seq], st.qlen)
        qkind = torch.where(cut, CUT, kind)
        queued = qpos < qlen
        out = _State(st.phase, qseq, qpos, qlen, qkind, st.tail, st.thinking, st.answer, st.waits, st.capped | cut,
                     st.finished, st.n_gen, st.round)
        intercept = in_thinking & ~queued
        if self._any_s1:
            ban = intercept & self.s1[slot] & (st.round == 0) & (self.num_waits[slot] > 0)
            intercept = intercept & ~ban
        else:
            ban = torch.zeros_like(intercept)
        answer_cap = active & (st.phase == ANSWER) & ~queued & (st.answer >= self.max_answer[slot])
        force = torch.where(active & queued & (st.phase != DONE), self._head(slot, qseq, qpos), -1)
        force = torch.where(answer_cap, self.stops[slot, 0], force)
        return out, force, intercept, self._must_extend(slot, st), ban

    def intercept_ids(self, slot: torch.Tensor, extend: torch.Tensor, tail: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """[n, k+1] the ids an intercepting row watches (stop ids, then the end-attempt token when the end would be
        extended, `MarkerTokens.end_attempt`; unused columns repeat the first stop id) and [n, k+1] which columns
        are distinct."""
        stops, uniq = self.stops[slot], self.stops_u[slot]
        with_end = (extend | self.s1[slot]) if self._any_s1 else extend  # s1 always watches the end marker
        end = self.end0[slot]
        if self._any_text:  # a plain-text marker: its last token, once the tail holds the others
            text = self.end_text[slot]
            after_head = ((tail == self.end_head_r[slot]) | ~self.end_head_m[slot]).all(dim=1)
            with_end = with_end & (~text | after_head)
            end = torch.where(text, self.end_last[slot], end)
        end_col = torch.where(with_end, end, stops[:, 0])
        return torch.cat([stops, end_col[:, None]], dim=1), torch.cat([uniq, with_end[:, None]], dim=1)

    def replacement_head(self, slot: torch.Tensor, st: _State, extend: torch.Tensor) -> torch.Tensor:
        """The first id of what an intercepted end is replaced by (extrapolation or end marker)."""
        return self.seqs[slot, self._replacement_seq(slot, st, extend), 0]

    def resolve(self, slot: torch.Tensor, st: _State, hit: torch.Tensor, extend: torch.Tensor):
        """`BudgetTracker.intercept` for rows where `hit`: queue the replacement; returns (state, its first id)."""
        seq = self._replacement_seq(slot, st, extend)
        kind = torch.where(extend, EXTRAP, torch.where(seq == SEQ_EOS, STOP, MARKER))
        out = _State(st.phase, torch.where(hit, seq, st.qseq), torch.where(hit, 0, st.qpos),
                     torch.where(hit, self.lens[slot, seq], st.qlen),
                     torch.where(hit, kind, st.qkind), st.tail, st.thinking, st.answer,
                     st.waits + (hit & extend).long(), st.capped, st.finished, st.n_gen,
                     torch.where(hit & extend, 0, st.round))
        return out, self.seqs[slot, seq, 0]

    def observe(self, slot: torch.Tensor, st: _State, token: torch.Tensor, active: torch.Tensor):
        """`BudgetTracker.observe` for every active row; returns the updated state and each token's kind code."""
        token = token.long()
        done = st.phase == DONE
        queued = st.qpos < st.qlen
        pop = active & ~done & queued & (token == self._head(slot, st.qseq, st.qpos))
        own = active & ~done & ~pop  # the model's own token (a mismatch drops the rest of the forced run)
        is_stop = (self.stops[slot] == token[:, None]).any(dim=1)
        starts_end = token == self.end0[slot]  # the model begins the end marker: it is completed for it
        tail = torch.where(active[:, None], torch.cat([st.tail[:, 1:], token[:, None]], dim=1), st.tail)
        ends_end = ((tail == self.end_r[slot]) | ~self.end_m[slot]).all(dim=1)
        marker = starts_end
        text_end = None
        if self._any_text:
            # A plain-text marker: its first piece alone is text, never completed; once the model wrote the whole
            # marker itself, its last piece and the pieces before it are the marker.
            text = self.end_text[slot]
            starts_end = starts_end & ~text
            text_end = own & ~is_stop & (st.phase == THINKING) & text & ends_end
            marker = starts_end | text_end
        completes_end = own & ~is_stop & (st.phase == THINKING) & starts_end
        thinking_own = torch.where(marker, MARKER, THINK)
        own_kind = torch.where(is_stop, STOP, torch.where(st.phase == THINKING, thinking_own,
                                                          torch.where(st.phase == ANSWER, ANSWER_K, MARKER)))
        kind = torch.where(done, AFTER_STOP, torch.where(pop, st.qkind, own_kind))
        qpos = torch.where(pop, st.qpos + 1, torch.where(own, 0, st.qpos))
        qlen = torch.where(own, 0, st.qlen)
        qseq = torch.where(completes_end, SEQ_END, st.qseq)
        qpos = torch.where(completes_end, 1, qpos)
        qlen = torch.where(completes_end, self.lens[slot, SEQ_END], qlen)
        qkind = torch.where(completes_end, MARKER, st.qkind)
        thinking = st.thinking + (active & ((kind == THINK) | (kind == EXTRAP))).long()
        if text_end is not None:
            thinking = thinking - torch.where(text_end, torch.minimum(self.end_len[slot] - 1, st.thinking), 0)
        answer = st.answer + (active & (kind == ANSWER_K)).long()
        ends_start = ((tail == self.start_r[slot]) | ~self.start_m[slot]).all(dim=1)
        phase = torch.where(active & (st.phase == BEFORE) & ends_start, THINKING, st.phase)
        phase = torch.where(active & (st.phase == THINKING) & ends_end, ANSWER, phase)
        stop = active & (kind == STOP)
        phase = torch.where(stop, DONE, phase)
        qlen = torch.where(stop, 0, qlen)
        qpos = torch.where(stop, 0, qpos)
        out = _State(phase, qseq, qpos, qlen, qkind, tail, thinking, answer, st.waits, st.capped, st.finished | stop,
                     st.n_gen + active.long(), st.round + (active & (kind == THINK)).long())
        return out, kind

    # ---- engine steps -----------------------------------------------------------------------------------------

    def commit(self, slot: torch.Tensor, token: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Advance stored state by one committed token per row (`active` rows only): the decision taken for it is
        replayed (its stored outcome from `propose`, else inferred from the token as `BudgetTracker.replay` does:
        a request that comes back with output is replayed by `resume`), then the token is observed. Returns each
        token's kind code."""
        return self._commit(slot, token, active, self._is_whole(slot))

    def _commit(self, slot: torch.Tensor, token: torch.Tensor, active: torch.Tensor | None, whole: bool) -> torch.Tensor:
        everyone = active is None
        if everyone:
            active = torch.ones(slot.shape[0], dtype=torch.bool, device=self.device)
        token = token.long()
        st = self.state if whole else self.state.index(slot)
        st, _, intercept, extend, _ = self.decide(slot, st, active)
        ids, _ = self.intercept_ids(slot, extend, st.tail)
        inferred = ~(ids == token[:, None]).any(dim=1) & (token == self.replacement_head(slot, st, extend))
        j = st.n_gen - self.pending_base[slot]
        known = (self.pending_base[slot] >= 0) & (j >= 0) & (j <= self.lookahead)
        stored = self.pending_hit[slot, j.clamp(0, self.lookahead)]
        hit = active & intercept & torch.where(known, stored, inferred)
        st, _ = self.resolve(slot, st, hit, extend)
        new, kind = self.observe(slot, st, token, active)
        new = new if everyone else st.where(active, new)
        if whole:
            self.state = new
        else:
            self.state.put_(slot, new)
        return kind

    def _run(self, method, *args):
        """`method(self, *args)`: compiled on the fused path (`hf_s1.engines.fused`), else as written."""
        if self.fused:
            return _fused.run(method, self, *args)
        return method(self, *args)

    def _is_whole(self, slot: torch.Tensor) -> bool:
        """Whether `slot` is every slot in order (a batch that owns the whole core): no gather/scatter needed.
        Decided on the host from the tensor's identity, never by reading it. The fused path always gathers (a
        gather costs nothing inside a compiled graph; one graph serves whole and partial batches)."""
        return slot is self._whole and not self.fused

    def whole(self) -> torch.Tensor:
        """The slot index of a batch that owns every slot, row i in slot i (pass this very tensor)."""
        return self._whole

    def propose(
        self,
        logits: torch.Tensor,
        slot: torch.Tensor,
        active: torch.Tensor,
        *,
        probs: torch.Tensor | None = None,
        sampled: torch.Tensor | None = None,
        uniform: torch.Tensor | None = None,
        state: _State | None = None,
        level: torch.Tensor | None = None,
        allowed: torch.Tensor | None = None,
        top: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[_State, torch.Tensor]:
        """Decide the next token of every active logits row and write it into `logits` (in place).

        Args:
            logits: [n, vocab] the row's logits after the stages before this one.
            slot: [n] each row's slot.
            active: [n] rows to decide (others are left untouched).
            probs: [n, vocab] the sampler's probabilities for sampled rows (any values for greedy rows).
            sampled: [n] rows that sample (default: the slots' greedy flag).
            uniform: [n] uniform draws for unseeded sampled rows (seeded rows hash their seed and position).
            state: the rows' working state (default: a copy of their slots' stored state).
            level: [n] each row's offset among its request's rows (speculative decoding), default 0.
            allowed: [n, vocab] the logits whose `-inf` entries are prohibitions a forced token must respect
                (default: `logits`). An adapter that hands in logits its sampler already truncated passes the
                logits from before the truncation: a token outside the sampler's top-k / top-p may be forced.
            top: `logits.max(dim=-1)` when the caller already has it (several calls over one step's logits).
        Returns:
            the rows' state after the decision (for continuing over draft tokens) and whether each row's
            intercepted end was replaced.
        """
        return self._propose(logits, slot, active, probs, sampled, uniform, state, level, allowed, top,
                             self._is_whole(slot))

    def step(
        self,
        logits: torch.Tensor,
        slot: torch.Tensor,
        active: torch.Tensor,
        token: torch.Tensor,
        committed: torch.Tensor | None = None,
        *,
        commit_slot: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        uniform: torch.Tensor | None = None,
        allowed: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decode step: `commit(commit_slot, token, committed)`, then `propose(logits, slot, active, ...)`, as
        a single call. `commit_slot` defaults to `slot`. Returns the committed tokens' kind codes and whether each
        row's intercepted end was replaced.

        On the fused path (`fused=True`) a step is one compiled graph (`step_drafts_from_table`, with drafts, is
        another). `commit` and `propose` called on their own always run eagerly: no engine step calls them, and
        each compiled variant costs a compilation."""
        commit_slot = slot if commit_slot is None else commit_slot
        return self._run(BatchBudget._step, logits, slot, active, token, committed, commit_slot, probs, uniform,
                         allowed, self._is_whole(commit_slot), self._is_whole(slot))

    def step_from_table(
        self,
        logits: torch.Tensor,
        slot: torch.Tensor,
        active: torch.Tensor,
        table: torch.Tensor,
        offset: torch.Tensor,
        end: torch.Tensor,
        committed: torch.Tensor,
        *,
        commit_slot: torch.Tensor,
        probs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`step` for an engine that keeps every request's ids in a device table (vLLM Model Runner V2's
        `all_token_ids`): the token committed for slot s is `table[s, offset[s] + n]`, where n counts what s has
        committed, if that position is below `end[s]` (and `committed` holds for its row). The gather runs inside
        the step, so on the fused path the whole step stays one compiled graph and the host reads nothing."""
        return self._run(BatchBudget._step_from_table, logits, slot, active, table, offset, end, committed,
                         commit_slot, probs, self._is_whole(commit_slot), self._is_whole(slot))

    def step_drafts_from_table(
        self,
        logits: torch.Tensor,
        slot: torch.Tensor,
        active: torch.Tensor,
        level: torch.Tensor,
        draft: torch.Tensor,
        table: torch.Tensor,
        offset: torch.Tensor,
        end: torch.Tensor,
        committed: torch.Tensor,
        *,
        commit_slot: torch.Tensor,
        probs: torch.Tensor | None = None,
    ) -> None:
        """`step_from_table` with speculative decoding: each request commits up to `1 + lookahead` tokens from
        the table (the drafts vLLM accepted, then its own token), then every logits row is decided, a request's
        row at `level` d continuing from its row at d - 1 over that row's draft token.

        Args:
            slot, active: [rows] each logits row's slot, and the rows to decide.
            level: [rows] each row's offset among its request's rows (0: the committed position).
            draft: [rows] the token each row reads (its request's draft at that offset).
            table, offset, end, committed, commit_slot: as in `step_from_table`, one entry per request.
        """
        self._run(BatchBudget._step_drafts_from_table, logits, slot, active, level, draft, table, offset, end,
                  committed, commit_slot, probs)

    def _step_drafts_from_table(self, logits, slot, active, level, draft, table, offset, end, committed, commit_slot,
                                probs):
        for _ in range(1 + self.lookahead):
            self._commit(commit_slot, *self._next_from_table(table, offset, end, committed, commit_slot), False)
        working = self.state.index(slot)
        top = logits.max(dim=-1)
        previous_row = (torch.arange(slot.shape[0], device=slot.device) - 1).clamp(min=0)
        for depth in range(1 + self.lookahead):
            working, _ = self._propose(logits, slot, active & (level == depth), probs, None, None, working, level,
                                       None, top, False)
            if depth < self.lookahead:  # row r at depth + 1 continues from row r - 1 over its draft token
                deeper = active & (level == depth + 1)
                advanced, _ = self.observe(slot, working.index(previous_row), draft, deeper)
                working = working.where(deeper, advanced)

    def _step_from_table(self, logits, slot, active, table, offset, end, committed, commit_slot, probs,
                         commit_whole: bool, whole: bool):
        token, committed = self._next_from_table(table, offset, end, committed, commit_slot)
        return self._step(logits, slot, active, token, committed, commit_slot, probs, None, None, commit_whole, whole)

    def _next_from_table(self, table, offset, end, committed, commit_slot):
        """Each request's next uncommitted token in the engine's id table, and whether it is there to commit."""
        position = offset[commit_slot] + self.state.n_gen[commit_slot]
        token = table[commit_slot, position.clamp(max=table.shape[1] - 1)]
        return token, committed & (position < end[commit_slot].long())

    def _step(self, logits, slot, active, token, committed, commit_slot, probs, uniform, allowed, commit_whole: bool,
              whole: bool):
        kind = self._commit(commit_slot, token, committed, commit_whole)
        _, hit = self._propose(logits, slot, active, probs, None, uniform, None, None, allowed, None, whole)
        return kind, hit

    def _propose(self, logits, slot, active, probs, sampled, uniform, state, level, allowed, top, whole: bool):
        if state is None:
            state = self.state if whole else self.state.index(slot)
        st, force, intercept, extend, ban_only = self.decide(slot, state, active)
        ids, uniq = self.intercept_ids(slot, extend, st.tail)
        top_value, top_id = logits.max(dim=-1) if top is None else top
        if sampled is None:
            sampled = ~self.greedy[slot]
        greedy_hit = (ids == top_id[:, None]).any(dim=1)
        hit = greedy_hit
        if probs is not None:
            mass = (probs.gather(1, ids) * uniq).sum(dim=1)
            draw = _uniform(self.seed[slot], st.n_gen)
            if uniform is not None:
                draw = torch.where(self.seeded[slot], draw, uniform)
            hit = torch.where(sampled, (mass >= _CERTAIN) | (draw < mass), greedy_hit)
        hit = intercept & hit
        allowed = logits if allowed is None else allowed
        repl = self.replacement_head(slot, st, extend)
        hit = hit & torch.isfinite(allowed.gather(1, repl[:, None]).squeeze(1))  # replacement forbidden: ban instead
        st, head = self.resolve(slot, st, hit, extend)
        force = torch.where(hit, head, force)
        ban = (intercept & ~hit) | ban_only
        # Record the outcome for commit().
        lvl = torch.zeros_like(slot) if level is None else level
        lvl_ok = active & (lvl <= self.lookahead)
        self.pending_hit[slot, lvl.clamp(max=self.lookahead)] = torch.where(
            lvl_ok, hit, self.pending_hit[slot, lvl.clamp(max=self.lookahead)])
        # A request's rows share its slot: only its level-0 row sets the base. A scatter with "amax" keeps the
        # write deterministic (plain indexing with repeated indices is not), and a request's base only grows.
        base = torch.where(lvl_ok & (lvl == 0), st.n_gen, -1)
        self.pending_base.scatter_reduce_(0, slot, base, reduce="amax")
        if self.log_injections:
            self._log(slot, st.n_gen, active, hit)
        # One write per row over [forced id, intercepted ids]: force lifts the forced id above its row unless an
        # earlier stage forbade it (-inf); ban sets the intercepted ids of rows that did not attempt an end to
        # -inf. A row never both forces and bans, and each value depends on its column alone, so repeated columns
        # write the same value (one index_put_, which a compiled step performs in place).
        cols = torch.cat([force.clamp(min=0)[:, None], ids], dim=1)
        value = logits.gather(1, cols)
        lift = (cols == force[:, None]) & torch.isfinite(allowed.gather(1, cols))
        lifted = (top_value + 1e4 + 1e-2 * top_value.abs())[:, None]
        value = torch.where(lift, torch.maximum(lifted, value), value)
        banned = ban[:, None] & (cols[:, :, None] == ids[:, None, :]).any(dim=2)
        value = torch.where(banned, float("-inf"), value)
        logits.index_put_((self._row_index(cols), cols), value)
        if probs is not None:
            # Keep the sampler's own truncation (top-k / top-p / min-p) on banned rows, so a later stage that
            # renormalises cannot widen the support after the ban.
            logits.masked_fill_((ban & sampled)[:, None] & (probs == 0), float("-inf"))
        return st, hit

    def _row_index(self, cols: torch.Tensor) -> torch.Tensor:
        return torch.arange(cols.shape[0], device=cols.device)[:, None].expand_as(cols)

    def _log(self, slot: torch.Tensor, position: torch.Tensor, active: torch.Tensor, value: torch.Tensor) -> None:
        """Record each active row's decision at its position (a set, not an or: a draft's decision that was
        rejected is overwritten when the position is decided again). Inactive rows write the scratch column."""
        scratch = self.injected.shape[1] - 1
        pos = torch.where(active, position.clamp(max=scratch - 1), scratch)
        self.injected[slot, pos] = value & active

    def reserve_log(self, length: int) -> None:
        """Make room in the injection log for `length` generated tokens per slot (host-known, no device read);
        the log doubles when it grows, so a generation reallocates it a logarithmic number of times."""
        if length + 2 > self.injected.shape[1]:
            width = self.injected.shape[1] - 1
            grown = torch.zeros(self.num_slots, max(length + 2, 2 * width + 1), dtype=torch.bool, device=self.device)
            grown[:, :width] = self.injected[:, :width]
            self.injected = grown
            self._layout += 1

    def log_row(self, slot: int) -> torch.Tensor:
        """A copy of `slot`'s injection log (on the device, no read), to keep after the slot is given away."""
        return self.injected[slot, :-1].clone()

    def restore_log(self, slot: int, row: torch.Tensor) -> None:
        """Give `slot` the log a request brought back (a preempted request, `log_row`), so that the slot's log
        covers its whole output. Call after `set_slots`, which clears the slot's log, and replay the output with
        `resume`, which takes the same decisions from the host's copy."""
        n = min(row.shape[0], self.injected.shape[1] - 1)
        self.injected[slot, :n] = row[:n]

    # ---- read-out ---------------------------------------------------------------------------------------------

    def stats(self, slots: Sequence[int]) -> dict[str, list]:
        """Counters of `slots` (reads the device: call when a generation is over, not per step)."""
        idx = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        st = self.state.index(idx)
        return {name: getattr(st, name).tolist() for name in ("thinking", "answer", "waits", "capped", "finished",
                                                               "n_gen", "phase")}

    def injected_positions(self, slot: int) -> set[int]:
        """Generated positions of `slot` where an extrapolation was injected (reads the device)."""
        return set(torch.nonzero(self.injected[slot, :-1]).flatten().tolist())


def _bucket(n: int) -> int:
    """The power of two at or above `n`."""
    return 1 << max(0, n - 1).bit_length()


def _last_match(rows: torch.Tensor, marker: torch.Tensor) -> torch.Tensor:
    """[n] start index of the last occurrence of `marker` in each row, or -1."""
    n, width = rows.shape
    m = marker.shape[0]
    if width < m:
        return torch.full((n,), -1, dtype=torch.long, device=rows.device)
    hits = (rows.unfold(1, m, 1) == marker).all(dim=2)
    index = torch.arange(hits.shape[1], device=rows.device)
    return torch.where(hits, index, -1).max(dim=1).values
