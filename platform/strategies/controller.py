"""The RL controller as an Optuna sampler: an LSTM policy trained with REINFORCE (Zoph & Le,
"Neural Architecture Search with Reinforcement Learning", ICLR 2017; ENAS, Pham et al.,
"Efficient Neural Architecture Search via Parameter Sharing", ICML 2018).

The policy emits the space's decisions (``space.decisions()``) one after another. Its input at
the first step is a learned vector, then the embedding of the previous choice, so each choice is
conditioned on all earlier ones; a decision that is inactive for the partial sample
(``decision.dim.is_active``) is skipped (the LSTM state passes through unchanged). Logits are
shaped as in ENAS: divided by ``temperature``, then ``tanh_constant * tanh(.)``.

Learning: REINFORCE, ``loss = -mean_i(A_i * log p(sample_i)) - entropy_weight * mean_i(H_i)``,
with advantage ``A = r' - b``: ``r'`` is the reward after ``reward_transform`` and ``b`` an
exponential moving average of past ``r'`` (``baseline_decay``). The default transform, ``rank``,
replaces a reward by its quantile among every reward seen so far: NAS-Bench-201 accuracies run
from 10 % (cells that cut the input off) to 94 %, while the differences that matter near the top
are ~0.1 point, so raw or z-scored rewards let the outliers set the step size (``zscore`` and
``none`` remain available). Updates are batched: trials ``[k*M, (k+1)*M)`` form batch k
(M = ``batch_size``; ``warmup`` can make the first batch larger); batch k updates the policy
(``update_steps`` Adam steps) once all its trials have finished. Each update also replays the
``replay_batches`` batches before it, each episode weighted by ``min(1, pi(x) / mu(x))`` with mu
the policy that proposed it (truncated importance sampling, as in ACER/V-trace): with ~100
evaluations every sample is worth more than one gradient step (+0.05 points on NAS-Bench-201,
averaged over 4 x 60-80 held-out seeds; 0 gives plain on-policy REINFORCE).

Outcomes: COMPLETE trials give their reward (``Reward``: the objective, or a declared
multi-objective reward such as MnasNet's); PRUNED trials the reward of their last reported
value; FAILED trials, and invalid samples (``space.validate`` raises) that the policy drew and
the sampler rejected before proposing a valid one (kept in the trial's ``nasforge:rejected``
attribute), get the penalty reward ``invalid_reward`` (default: the lowest reward seen so far,
0 before any). So do infeasible trials (a ``Trial.set_constraint`` value > 0; see
`SampleStrategy`), whatever their objective: their own score never enters the reward transform,
and a penalized episode's advantage is clipped at 0, so the policy is never pushed towards a
failed, invalid or infeasible sample (with a user's ``invalid_reward`` above the baseline too).
A drawn sample that an additive model of the reported constraint values predicts infeasible
(`SampleStrategy.feasibility`) is redrawn like a duplicate, without a penalty. A trial still
RUNNING holds its batch back; after ``max_lag`` further batches have started it is skipped (a
crashed worker must not freeze the policy).

Determinism: the policy is a function of the seed and the finished trials of whole batches
(replayed in trial-number order, on one CPU thread); a proposal for trial n uses the policy after
every batch that lies entirely below n, and a generator seeded by (seed, n). A resumed sweep or a
second worker therefore continues the same policy. The replayed state is cached in-process and
extended batch by batch, so a suggestion costs a few ms even after thousands of trials.

Fair de-duplication (``dedup``): a drawn sample whose key (for NAS-Bench-201 the canonical,
isomorphism-free cell, from the space alone) was already proposed is redrawn, up to
``max_tries`` draws. With ``replay_duplicates`` the redrawn duplicates also enter the update
with the reward their earlier trial already earned (no new evaluation).

Defaults follow ENAS where its values suit a budget of ~100 evaluations (LSTM size 64, uniform
init in [-0.1, 0.1], its Adam with beta1 = 0 and eps = 1e-3, entropy bonus 1e-4); the learning
rate (0.02), batch size (5), baseline decay (0.9), tanh constant (1.5) and the rank transform
are set for that budget. With ENAS's own values (lr 0.00035, baseline decay 0.999, temperature
5, tanh constant 2.5, raw rewards) it reproduces the published NAS-Bench-201 REINFORCE figure
(93.8 %); with the defaults it reaches 94.1 % (benchmarks/README.md). Every knob can be set in
``strategy.options``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nasforge.platform.strategies.base import Record, RewardOptions, SampleStrategy, parse_options
from nasforge.platform.strategies.controller_policy import build_policy, one_thread
from nasforge.platform.strategies.proxy_prior import ProxyPrior, ProxyPriorOptions
from nasforge.platform.reinforce import TRANSFORMS, EmaBaseline, policy_gradient_loss, reward_transform


@dataclass
class ControllerOptions(ProxyPriorOptions, RewardOptions):
    hidden: int = 64  # LSTM size (ENAS: 64; Zoph & Le: 35)
    layers: int = 1  # stacked LSTM cells (ENAS: 1; Zoph & Le: 2)
    lr: float = 0.02  # Adam learning rate (ENAS: 0.00035 over 10^4+ samples)
    batch_size: int = 5  # trials per policy update (M)
    warmup: int = 0  # >0: the first batch is trials [0, warmup) (a broad first look), then batches of M
    update_steps: int = 1  # Adam steps per batch
    adam_beta1: float = 0.0  # ENAS's controller Adam: beta1 = 0, eps = 1e-3
    adam_eps: float = 0.001
    baseline_decay: float = 0.9  # EMA of rewards
    entropy_weight: float = 0.0001  # ENAS
    temperature: float | None = None  # logits / temperature (ENAS: 5.0 for macro search)
    tanh_constant: float | None = 1.5  # C * tanh(logits) (ENAS: 2.5 macro, 1.1 micro)
    reward_transform: str = "rank"  # rank: quantile among rewards seen; zscore: (r - mean) / std; none
    init_range: float = 0.1  # uniform init of every weight (ENAS)
    grad_clip: float | None = None
    invalid_reward: float | None = None  # None: the lowest reward seen so far (0 before any)
    dedup: bool = True
    replay_duplicates: bool = False
    replay_batches: int = 3  # also replay the last k batches, with truncated importance weights (0: off)
    max_tries: int = 64
    max_lag: int = 4

    def check(self) -> None:
        if self.warmup < 0 or self.replay_batches < 0:
            raise ValueError(f"warmup and replay_batches must be >= 0, got {self.warmup}, {self.replay_batches}")
        for name in ("hidden", "layers", "batch_size", "update_steps", "max_tries", "max_lag"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 or null, got {self.temperature}")
        if self.reward_transform not in TRANSFORMS:
            raise ValueError(f"reward_transform must be one of {', '.join(TRANSFORMS)}; got {self.reward_transform!r}")
        if self.tanh_constant is not None and not self.tanh_constant > 0:
            raise ValueError(f"tanh_constant must be > 0 or null, got {self.tanh_constant}")


def _advantages(rewards: list[float], penalized: list[bool], baseline: float) -> list[float]:
    """``r' - b``; a penalized episode (failed, invalid or infeasible) never gets a positive one."""
    return [min(rw - baseline, 0.0) if pen else rw - baseline for rw, pen in zip(rewards, penalized)]


class ControllerSampler(SampleStrategy):
    """``ControllerSampler(space, seed, directions, **options)``; options as `ControllerOptions`."""

    def __init__(self, space, seed: int = 0, directions=("maximize",), **options: Any):
        self.options = parse_options(ControllerOptions, options, "strategy.options")
        super().__init__(space, seed, directions, self.options.make_reward(directions))
        self._state: dict[str, Any] | None = None
        self.prior = ProxyPrior(space, self.options, seed)

    def reset(self) -> None:
        self._state = None

    # -- the policy state, replayed batch by batch ----------------------------------------
    def _fresh_state(self) -> dict[str, Any]:
        import torch

        policy = build_policy(self.decisions, self.options, self.seed)
        return {"policy": policy, "opt": torch.optim.Adam(policy.parameters(), lr=self.options.lr,
                                                         betas=(self.options.adam_beta1, 0.999),
                                                         eps=self.options.adam_eps),
                "batches": 0, "baseline": EmaBaseline(self.options.baseline_decay), "rewards": [],
                "episodes": []}

    def policy_state(self, history: list[Record], number: int) -> dict[str, Any]:
        """The policy after every batch that lies entirely below trial ``number``."""
        o = self.options
        if self._state is None:
            self._state = self._fresh_state()
        st = self._state
        by_number = {r.number: r for r in history}
        while True:
            lo, hi = self.batch_bounds(st["batches"])
            if hi > number:
                break
            recs = [by_number.get(n) for n in range(lo, hi)]
            if not all(r is not None and r.finished for r in recs) and number < hi + o.max_lag * o.batch_size:
                break  # wait for the batch's running trials
            self._update(st, [r for r in recs if r is not None and r.finished], by_number)
            st["batches"] += 1
        return st

    def batch_bounds(self, k: int) -> tuple[int, int]:
        """Trial numbers [lo, hi) of batch k."""
        o = self.options
        if o.warmup <= 0:
            return k * o.batch_size, (k + 1) * o.batch_size
        if k == 0:
            return 0, o.warmup
        return o.warmup + (k - 1) * o.batch_size, o.warmup + k * o.batch_size

    def _episodes(self, recs: list[Record], by_key: dict[str, float]) -> list[tuple[dict, float | None]]:
        """(sample, reward) pairs of a batch; reward None means 'the invalid penalty'."""
        eps: list[tuple[dict, float | None]] = []
        for r in recs:
            for bad in r.extra.get("rejected", []) or []:
                eps.append((bad, None))
            if self.options.replay_duplicates:
                for dup in r.extra.get("duplicates", []) or []:
                    score = by_key.get(self.seen_key(dup))
                    if score is not None:
                        eps.append((dup, score))
            if r.sample is None:
                continue
            if r.ranked:
                eps.append((r.sample, r.score))
            elif r.state.name == "FAIL" or not r.feasible:  # failed or infeasible: the penalty
                eps.append((r.sample, None))
            # PRUNED without a reported value: no information, skipped
        return eps

    def _update(self, st, recs: list[Record], by_number: dict[int, Record]) -> None:
        import torch

        o = self.options
        by_key = {}
        if o.replay_duplicates:
            by_key = {r.key: r.score for r in sorted(by_number.values(), key=lambda r: r.number)
                      if r.key is not None and r.score is not None and r.number < self.batch_bounds(st["batches"])[1]}
        eps = self._episodes(recs, by_key)
        if not eps:
            return
        # the transform sees every real reward replayed so far, in replay order
        seen = st["rewards"]
        seen.extend(rew for _, rew in eps if rew is not None)
        lowest = min(seen) if seen else None
        penalty = o.invalid_reward if o.invalid_reward is not None else (lowest if lowest is not None else 0.0)
        transform = self._transform(seen)
        rewards = [transform(penalty if rew is None else rew) for _, rew in eps]
        baseline = st["baseline"].update(rewards)  # the advantage uses the baseline from before this batch
        idx = [[self.index(i, s[d.label]) if d.label in s else -1 for i, d in enumerate(self.decisions)]
               for s, _ in eps]
        penalized = [rew is None for _, rew in eps]
        adv = _advantages(rewards, penalized, baseline)
        with one_thread():
            weights = None
            if o.replay_batches:
                with torch.no_grad():
                    behaviour, _ = self._log_prob(st["policy"], idx)  # the policy that proposed this batch
                st["episodes"].append((idx, [penalty if rew is None else rew for _, rew in eps], behaviour,
                                       penalized))
                del st["episodes"][:-(o.replay_batches + 1)]
                idx = [i for b in st["episodes"] for i in b[0]]
                adv = _advantages([transform(r) for b in st["episodes"] for r in b[1]],
                                  [p for b in st["episodes"] for p in b[3]], baseline)
                behaviour = torch.cat([b[2] for b in st["episodes"]])
            a = torch.tensor(adv, dtype=torch.float32)
            for _ in range(o.update_steps):
                logp, ent = self._log_prob(st["policy"], idx)
                if o.replay_batches:  # truncated importance weights for episodes of older policies
                    weights = torch.exp(logp.detach() - behaviour).clamp(max=1.0)
                loss = policy_gradient_loss(logp, a, ent, o.entropy_weight, weights)
                st["opt"].zero_grad()
                loss.backward()
                if o.grad_clip:
                    torch.nn.utils.clip_grad_norm_(st["policy"].parameters(), o.grad_clip)
                st["opt"].step()

    def _transform(self, seen: list[float]):
        """The reward transform given every real reward seen so far (see the module docstring)."""
        return reward_transform(self.options.reward_transform, seen)

    def _log_prob(self, policy, idx: list[list[int]]):
        """Log-probability and entropy of each given sample (decision indices, -1 = inactive)."""
        import torch

        B, H = len(idx), self.options.hidden
        choice = torch.tensor(idx, dtype=torch.long)  # (B, D)
        state = [(torch.zeros(B, H), torch.zeros(B, H)) for _ in range(self.options.layers)]
        x = policy.go.expand(B, H)
        logp = torch.zeros(B)
        ent = torch.zeros(B)
        for i in range(len(self.decisions)):
            active = choice[:, i] >= 0  # (B,)
            if not bool(active.any()):
                continue
            out, new = policy.step(x, state)
            lp = torch.log_softmax(policy.logits(i, out), dim=-1)  # (B, n_i)
            c = choice[:, i].clamp(min=0)
            logp = logp + torch.where(active, lp.gather(1, c[:, None])[:, 0], torch.zeros(B))
            ent = ent + torch.where(active, -(lp.exp() * lp).sum(-1), torch.zeros(B))
            m = active[:, None].float()
            state = [(m * h2 + (1 - m) * h1, m * c2 + (1 - m) * c1) for (h1, c1), (h2, c2) in zip(state, new)]
            x = m * policy.embed[i](c) + (1 - m) * x
        return logp, ent

    def probabilities(self, study, samples: list[dict[str, Any]]) -> list[float]:
        """The current policy's probability of each sample (for inspection and tests)."""
        import torch

        number = len(study.get_trials(deepcopy=False))
        st = self.policy_state(self.history(study, number), number)
        idx = [[self.index(i, s[d.label]) if d.label in s else -1 for i, d in enumerate(self.decisions)]
               for s in samples]
        with torch.no_grad(), one_thread():
            logp, _ = self._log_prob(st["policy"], idx)
        return logp.exp().tolist()

    # -- sampling -------------------------------------------------------------------------
    def _draw(self, policy, rng, count: int) -> list[dict[str, Any]]:
        """``count`` samples from the policy (rows are independent; choices use ``rng``)."""
        import torch

        H = self.options.hidden
        samples: list[dict[str, Any]] = [{} for _ in range(count)]
        with torch.no_grad(), one_thread():
            state = [(torch.zeros(count, H), torch.zeros(count, H)) for _ in range(self.options.layers)]
            x = policy.go.expand(count, H)
            for i, d in enumerate(self.decisions):
                act = [d.dim.is_active(s) for s in samples]
                if not any(act):
                    continue
                out, new = policy.step(x, state)
                probs = torch.softmax(policy.logits(i, out), dim=-1).tolist()  # (count, n_i)
                picks = []
                for row, s in enumerate(samples):
                    if not act[row]:
                        picks.append(0)
                        continue
                    u, acc, k = rng.random(), 0.0, d.n - 1
                    for j, pj in enumerate(probs[row]):
                        acc += pj
                        if u < acc:
                            k = j
                            break
                    s[d.label] = d.choices[k]
                    picks.append(k)
                m = torch.tensor(act, dtype=torch.float32)[:, None]
                state = [(m * h2 + (1 - m) * h1, m * c2 + (1 - m) * c1) for (h1, c1), (h2, c2) in zip(state, new)]
                x = m * policy.embed[i](torch.tensor(picks)) + (1 - m) * x
        return samples

    def propose(self, history: list[Record], number: int) -> dict[str, Any]:
        o = self.options
        st = self.policy_state(history, number)
        seen = {r.key for r in history if r.key is not None} if o.dedup else set()
        if (warm := self.prior.proposal(number, seen, self.seen_key)) is not None:  # best proxy-scored first
            self.pending_attrs = {"rejected": [], "duplicates": []}
            return warm
        rng = self.rng(number)
        rejected: list[dict] = []
        duplicates: list[dict] = []
        unlikely: list[dict] = []  # predicted infeasible: redrawn, not penalized (nothing was measured)
        feasible = self.feasibility(history)
        chosen = None
        draws = 0
        chunk = min(16, o.max_tries)
        while chosen is None and draws < o.max_tries:
            for s in self._draw(st["policy"], rng, chunk):
                draws += 1
                if not self.is_valid(s):
                    if len(rejected) < 8:
                        rejected.append(s)
                    continue
                if o.dedup and self.seen_key(s) in seen:
                    if len(duplicates) < 8:
                        duplicates.append(s)
                    continue
                if not feasible(s):
                    unlikely.append(s)
                    continue
                chosen = s
                break
        if chosen is None and unlikely:  # everything new looked infeasible: try the first of those
            chosen = unlikely[0]
        if chosen is None:  # everything drawn was seen or invalid: a valid duplicate, else the last draw
            chosen = duplicates[0] if duplicates else s
            duplicates = duplicates[1:]
        self.pending_attrs = {"rejected": rejected, "duplicates": duplicates if o.replay_duplicates else []}
        return chosen
