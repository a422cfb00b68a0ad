"""A share is hashed once (DESIGN §7): the hasher's side of :mod:`assetd.catalog.share`.

Before reading the files of a batch of jobs, :meth:`ShareGate.sift` splits them in one short
transaction: those another host of the same share has hashed for exactly these figures
(*trusted*: recorded with that digest, the content rules applied as if read here, the file
checked unchanged by a stat first, never read), those another host is reading now (*waiting*:
looked up again after :data:`CLAIM_WAIT`), and the rest, claimed for this host and read.
Roots without a ``shared`` label pass straight through (no query).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from assetd.catalog.content import HashJob
from assetd.catalog.engine import SessionFactory
from assetd.catalog.roots import RootSpec
from assetd.catalog.share import (
    claim,
    drop_claims,
    renew_claims,
    shares_of,
    trusted_digests,
)
from assetd.catalog.states import utcnow
from assetd.fsutil import verify_file_unchanged

CLAIM_WAIT = 1.0
"""Seconds before a file another host is reading is looked up again (its hash is recorded in
the claiming host's next batch, within about 0.25 s of the read)."""


@dataclass
class Sifted:
    """What to do with a batch of jobs: read, record a trusted digest, or wait."""

    read: list[HashJob] = field(default_factory=list)
    trusted: list[tuple[HashJob, str]] = field(default_factory=list)
    waiting: list[HashJob] = field(default_factory=list)


class ShareGate:
    """The look-up and the claims of one host's hasher (``claims=False``: look up only, for the
    one-shot ``assetd hash``)."""

    def __init__(
        self, sessions: SessionFactory, host: str, roots: Sequence[RootSpec], *, claims: bool = True
    ) -> None:
        self._sessions = sessions
        self._host = host
        self._claims = claims and bool(host)
        self._held = self._claims  # the first idle look drops what a crash left
        self.set_roots(roots)

    def set_roots(self, roots: Sequence[RootSpec]) -> None:
        self._shares = shares_of(roots)

    @property
    def active(self) -> bool:
        return bool(self._shares)

    def sift(self, jobs: Sequence[HashJob]) -> Sifted:
        """Split ``jobs`` (database errors propagate: nothing is claimed then)."""
        shared = [j for j in jobs if j.root_id in self._shares]
        if not shared:
            return Sifted(read=list(jobs))
        with self._sessions() as s, s.begin():
            digests = trusted_digests(s, shared, self._shares)
            rest = [j for j in jobs if j.id not in digests]
            mine = (
                claim(s, self._host, rest, self._shares, now=utcnow())
                if self._claims
                else {j.id for j in rest}
            )
        self._held = self._held or bool(self._claims and shared)
        out = Sifted()
        for job in jobs:
            digest = digests.get(job.id)
            if digest is not None and verify_file_unchanged(job.path, job.size, job.mtime_ns):
                out.trusted.append((job, digest))
            elif digest is not None or job.id in mine:
                out.read.append(job)  # changed since: the read finds out and backs off
            else:
                out.waiting.append(job)
        return out

    def renew(self) -> None:
        """This host is still reading: its claims' leases start again."""
        if self._held and self._shares:
            with self._sessions() as s, s.begin():
                renew_claims(s, self._host, utcnow())

    def release(self) -> None:
        """Nothing left to read: drop this host's claims (also at start, after a crash)."""
        if self._claims:
            with self._sessions() as s, s.begin():
                drop_claims(s, self._host)
            self._held = False

    @property
    def held(self) -> bool:
        return self._held
