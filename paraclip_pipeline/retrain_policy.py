"""When automation retrains the text encoder: the ``PARACLIP_RETRAIN_POLICY`` setting.

Every retrain starts from the pretrained encoder and trains on every trainable shard, so
a retrain after each new shard (``eager``) mostly repeats work: on the demo one retrain
took about 10 minutes and wrote 183 MB (issue 13), and on real data it is GPU hours. A
PENDING shard is one whose trainable content differs from what the latest checkpoint was
trained on (new, changed, removed, or newly quarantined; an identical rerun is not
pending). The policy is one or more terms joined by ``+``, whichever comes first:

- ``eager``: retrain as soon as one shard is pending (what the demo and tests use);
- ``after_shards:N``: retrain once N shards are pending;
- ``cron:<5-field cron, UTC>``: retrain at the first tick of the cron after the latest
  checkpoint, if any shard is pending.

Default ``after_shards:3+cron:0 3 * * *``: a team with a steady stream of shards (several
a day) retrains at most once per three new shards, cutting retrains about 3x against
eager, and a trickle never waits more than a day (03:00 UTC, an hour after the nightly
refresh rebuilds stale shards). With no checkpoint at all the first one is trained as
soon as a shard is ready: there is no model to keep serving meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

RETRAIN_POLICY_ENV = "PARACLIP_RETRAIN_POLICY"
EAGER = "eager"
AFTER_SHARDS = "after_shards"
CRON = "cron"
DEFAULT_RETRAIN_POLICY = "after_shards:3+cron:0 3 * * *"


@dataclass(frozen=True)
class RetrainPolicy:
    # Retrain once this many shards are pending (1 = eager); None: only on the cron.
    min_pending: int | None
    # Retrain at this cron's first tick after the latest checkpoint when any is pending.
    cron: str | None = None

    @classmethod
    def parse(cls, spec: str) -> RetrainPolicy:
        """``eager`` | ``after_shards:N`` | ``cron:EXPR``, several joined by ``+``."""
        min_pending: int | None = None
        cron: str | None = None
        for term in (part.strip() for part in spec.split("+")):
            name, _, value = term.partition(":")
            name, value = name.strip(), value.strip()
            if name == EAGER and not value:
                min_pending = 1
            elif name == AFTER_SHARDS and value.isdigit() and int(value) >= 1:
                min_pending = int(value)
            elif name == CRON and len(value.split()) == 5:
                cron = " ".join(value.split())
            else:
                raise ValueError(
                    f"{RETRAIN_POLICY_ENV}={spec!r}: term {term!r} is not 'eager', "
                    "'after_shards:N' (N >= 1) or 'cron:<5-field cron expression>'"
                )
        return cls(min_pending=min_pending, cron=cron)

    def due_by_count(self, pending: int) -> bool:
        return self.min_pending is not None and pending >= self.min_pending

    def describe(self) -> str:
        terms = []
        if self.min_pending == 1:
            terms.append(EAGER)
        elif self.min_pending is not None:
            terms.append(f"{AFTER_SHARDS}:{self.min_pending}")
        if self.cron:
            terms.append(f"{CRON}:{self.cron}")
        return "+".join(terms)


DEFAULT_POLICY = RetrainPolicy.parse(DEFAULT_RETRAIN_POLICY)
