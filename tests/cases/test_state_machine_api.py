"""Random walks through the triage state machine over the real HTTP API.

A hypothesis `RuleBasedStateMachine` sends random actions as random staff members, with
fields present, missing or wrong and sometimes a stale `expected_version`, and holds
every answer and the stored case (read back over the API and straight from the
database) to a model built here from the contract's table. The table is written out
again below as plain data, not imported from `app.domain.triage`: a wrong table in the
app must disagree with this one.

Hypothesis drives the machine synchronously, so it runs in a worker thread; every
request and query is a coroutine handed back to the test's own (session-scoped) event
loop, which owns the database connection and the HTTP client.
"""

from __future__ import annotations

import asyncio
import calendar
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import select, update

from app.audit.models import AuditEntry
from app.cases.models import Case, CaseTransition
from app.db.session import SessionMaker
from app.domain.staff import Role
from app.staff.models import StaffUser
from tests.cases.helpers import insert_case
from tests.conftest import examples, organisation_today

T = TypeVar("T")
PROBLEM = "urn:cleanwindow:problem:"

# --- the contract's table, as data ---------------------------------------------------------
# action: (from states, to state, roles on any case they see, roles only when assigned,
#          required fields, accepted resolutions)


@dataclass(frozen=True)
class Row:
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    assigned_roles: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    resolutions: frozenset[str] = frozenset()


def _row(sources, target, roles, assigned=(), required=(), resolutions=()) -> Row:
    return Row(frozenset(sources), target, frozenset(roles), frozenset(assigned), frozenset(required), frozenset(resolutions))


TABLE: dict[str, Row] = {
    "acknowledge": _row({"received"}, "acknowledged", {"triage", "supervisor"}),
    "start_assessment": _row({"acknowledged"}, "assessing", {"triage", "supervisor"}),
    "accept": _row({"assessing"}, "investigating", {"triage", "supervisor"}, required={"assignee"}),
    "dismiss": _row(
        {"assessing"}, "closed", {"triage", "supervisor"}, required={"resolution"}, resolutions={"not_admissible", "duplicate"}
    ),
    "refer": _row({"assessing", "investigating"}, "referred", {"triage", "supervisor"}, assigned={"investigator"}),
    "conclude": _row(
        {"investigating"},
        "closed",
        {"supervisor"},
        assigned={"investigator"},
        required={"resolution"},
        resolutions={"substantiated", "unsubstantiated"},
    ),
    "close_referral": _row({"referred"}, "closed", {"triage", "supervisor"}),
    "reopen": _row({"closed"}, "assessing", {"supervisor"}, required={"reason"}),
}
ACTIONS = list(TABLE)
STATES = ["received", "acknowledged", "assessing", "investigating", "referred", "closed"]
RESOLUTIONS = ["not_admissible", "duplicate", "substantiated", "unsubstantiated"]
CASE_ROLES = {"triage", "supervisor", "investigator"}
# Symbolic actors, resolved against the case: "assigned_investigator" is the case's
# assignee (before anyone is assigned, simply the first investigator, who is not assigned).
ACTORS = ["triage", "supervisor", "assigned_investigator", "other_investigator", "auditor", "drill_coordinator", "admin"]
ACKNOWLEDGE_DAYS, FEEDBACK_MONTHS = 7, 3  # the contract's default deadlines
MAX_CASES = 2  # per walk: enough to see that one case's assignment does not open another
# Fifty under the "ci" profile (as before profiles existed), a quarter of that locally.
WALKS = examples(50)


def actions_from(state: str) -> set[str]:
    return {action for action, row in TABLE.items() if state in row.sources}


def may_take(action: str, role: str, assigned: bool) -> bool:
    row = TABLE[action]
    return role in row.roles or (assigned and role in row.assigned_roles)


def allowed_for(state: str, role: str, assigned: bool) -> set[str]:
    return {action for action in actions_from(state) if may_take(action, role, assigned)}


def add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# --- the people -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    username: str
    role: str
    id: uuid.UUID
    headers: dict[str, str]


@dataclass
class World:
    """What the machine works with: made once per test, shared by every example."""

    run: Callable[[Awaitable[T]], T]
    client: httpx.AsyncClient
    sessionmaker: SessionMaker
    people: dict[str, Person]  # triage, supervisor, investigator_a, investigator_b, auditor, ...
    inactive_investigator: str
    cases_made: int = 0
    steps: int = 0
    outcomes: dict[int, int] = field(default_factory=dict)
    succeeded: Counter[str] = field(default_factory=Counter)

    def by_username(self, username: str) -> Person | None:
        return next((person for person in self.people.values() if person.username == username), None)


# --- the model of one case ---------------------------------------------------------------------


@dataclass
class CaseModel:
    id: uuid.UUID
    received_on: date
    state: str = "received"
    version: int = 1
    assignee: str | None = None
    resolution: str | None = None
    acknowledged_on: date | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def acknowledge_due_on(self) -> date:
        return self.received_on + timedelta(days=ACKNOWLEDGE_DAYS)

    @property
    def feedback_due_on(self) -> date:
        return add_months(self.acknowledged_on or self.acknowledge_due_on, FEEDBACK_MONTHS)

    @property
    def next_due_on(self) -> date | None:
        """The earliest deadline still waiting for its act (the stored `next_due_on`)."""
        if self.state == "closed":
            return None
        return self.acknowledge_due_on if self.acknowledged_on is None else self.feedback_due_on

    def overdue(self, today: date) -> bool:
        # No staff messages are sent here, so feedback is never given.
        if self.state == "closed":
            return False
        return (self.acknowledged_on is None and today > self.acknowledge_due_on) or today > self.feedback_due_on


@dataclass(frozen=True)
class Expected:
    status: int
    type: str | None = None  # the problem type, when the status alone does not say which
    why: str = ""


# Values for the optional fields: good ones and ones the schema refuses.
GOOD_REASONS = ["The reporter sent new evidence.", "  padded note  "]
BAD_REASONS = ["", "   ", "x" * 1001]
BAD_RESOLUTIONS = ["bogus", "CLOSED", ""]


def schema_rejects(body: dict[str, Any]) -> str | None:
    """Why the request schema refuses the body (422 before anything else is looked at)."""
    if body["expected_version"] < 1:
        return "expected_version below 1"
    reason = body.get("reason")
    if reason is not None and not (1 <= len(reason.strip()) <= 1000):
        return "reason empty or too long"
    resolution = body.get("resolution")
    if resolution is not None and resolution not in RESOLUTIONS:
        return "unknown resolution"
    assignee = body.get("assignee")
    if assignee is not None and not (1 <= len(assignee) <= 64):
        return "assignee empty or too long"
    return None


def rotated(items: list[T], by: int) -> list[T]:
    return items[by % len(items) :] + items[: by % len(items)] if items else items


def likely(usual: st.SearchStrategy[T], other: st.SearchStrategy[T], focus: int) -> st.SearchStrategy[T]:
    """`usual` `focus` times as often as `other`."""
    return st.one_of(*[usual] * focus, other)


class CaseMachine(RuleBasedStateMachine):
    def __init__(self, world: World):
        super().__init__()
        self.world = world
        self.cases: dict[uuid.UUID, CaseModel] = {}
        self.focus = 1
        self.attempts = 0
        # Cases of earlier examples stay in the database: a category of this example's
        # own lets a queue query see only this example's cases.
        self.category = f"walk-{uuid.uuid4().hex[:12]}"
        self.touched: uuid.UUID | None = None  # the case the last step wrote to, or tried to
        self.changed = False  # whether that step changed it

    # --- plumbing ------------------------------------------------------------------------

    def call(self, coroutine: Awaitable[T]) -> T:
        return self.world.run(coroutine)

    def person(self, actor: str, case: CaseModel) -> Person:
        people = self.world.people
        investigators = [people["investigator_a"], people["investigator_b"]]
        assigned = next((p for p in investigators if p.username == case.assignee), None)
        if actor == "assigned_investigator":
            return assigned or investigators[0]
        if actor == "other_investigator":
            return next(p for p in investigators if p is not (assigned or investigators[0]))
        return people[actor]

    def new_case(self, received_days_ago: int) -> None:
        received_on = organisation_today() - timedelta(days=received_days_ago)
        row = self.call(insert_case(self.world.sessionmaker, received_on=received_on, category=self.category))
        self.cases[row.id] = CaseModel(row.id, received_on)
        self.touched, self.changed = row.id, True
        self.world.cases_made += 1

    # --- rules -----------------------------------------------------------------------------

    # How strongly a walk favours requests that could succeed: focused walks get deep into
    # the table (a conclude needs four successes first), loose ones try every refusal.
    @initialize(received_days_ago=st.sampled_from([0, 10]), focus=st.sampled_from([12, 4, 1]))
    def first_case(self, received_days_ago: int, focus: int) -> None:
        self.focus = focus
        self.new_case(received_days_ago)

    # One rule that picks its kind of step: with a rule per kind, hypothesis spends many
    # walks on one kind alone (all reads, say), which reach no state worth checking.
    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["transition"] * 4 + ["read", "new case"]), label="step")
        if kind == "new case" and len(self.cases) < MAX_CASES:
            self.new_case(data.draw(st.sampled_from([0, 10]), label="received days ago"))
        elif kind == "read":
            self.read(data)
        else:
            self.transition(data)

    def transition(self, data: st.DataObject) -> None:
        case = self.cases[data.draw(st.sampled_from(list(self.cases)), label="case")]
        self.touched = case.id
        # Most draws favour what could work now, so walks get past the first states.
        # (Rotated by the attempt count: hypothesis favours the first of a list, and every
        # action should get its turn at being first.)
        self.attempts += 1
        possible = rotated(sorted(actions_from(case.state)), self.attempts)
        action = data.draw(likely(st.sampled_from(possible), st.sampled_from(ACTIONS), self.focus), label="action")
        hopeful = rotated(
            [a for a in ACTORS if may_take(action, self.person(a, case).role, self.is_assigned(self.person(a, case), case))],
            self.attempts,
        )
        actor = data.draw(
            likely(st.sampled_from(hopeful) if hopeful else st.nothing(), st.sampled_from(ACTORS), self.focus), label="actor"
        )
        person = self.person(actor, case)
        fields = data.draw(
            likely(self.proper_fields(action), self.near_misses(action) | self.any_fields(), self.focus), label="fields"
        )
        version_kind = data.draw(
            likely(st.just("current"), st.sampled_from(["current", "older", "newer", "zero"]), self.focus), label="expected_version"
        )
        expected_version = {
            "current": case.version,
            "older": case.version - 1 if case.version > 1 else case.version + 1,
            "newer": case.version + 3,
            "zero": 0,
        }[version_kind]
        body = {"action": action, "expected_version": expected_version, **fields}

        expected = self.expect(case, person, body)
        response = self.call(
            self.world.client.post(f"/api/v1/cases/{case.id}/transitions", json=body, headers=person.headers)
        )
        self.world.steps += 1
        self.world.outcomes[response.status_code] = self.world.outcomes.get(response.status_code, 0) + 1
        context = (
            f"{person.role} {person.username} sent {body} on a case in {case.state} v{case.version} "
            f"(assignee {case.assignee}); expected {expected}; got {response.status_code} {response.text}"
        )
        assert response.status_code == expected.status, context
        payload = response.json()
        if expected.status != 200:
            assert response.headers["content-type"].startswith("application/problem+json"), context
            if expected.type is not None:
                assert payload["type"] == PROBLEM + expected.type, context
            if expected.type == "transition-not-allowed":
                assert set(payload["allowed_actions"]) == actions_from(case.state), context
                for name in actions_from(case.state):
                    assert name in payload["detail"], context
            if expected.type == "stale-version":
                assert payload["current_version"] == case.version, context
            return

        self.apply(case, person, body)
        self.changed = True
        self.world.succeeded[body["action"]] += 1
        assert payload["state"] == case.state, context
        assert payload["version"] == case.version, context
        assert payload["assignee"] == case.assignee, context
        assert payload["resolution"] == case.resolution, context
        assert set(payload["allowed_actions"]) == allowed_for(case.state, person.role, self.is_assigned(person, case)), context

    def read(self, data: st.DataObject) -> None:
        """Whoever reads a case sees it, gets 404 or 403, as the model says; an investigator's
        queue holds exactly the cases assigned to them."""
        case = self.cases[data.draw(st.sampled_from(list(self.cases)), label="case")]
        person = self.person(data.draw(st.sampled_from(ACTORS), label="reader"), case)
        response = self.call(self.world.client.get(f"/api/v1/cases/{case.id}", headers=person.headers))
        if person.role not in CASE_ROLES:
            assert response.status_code == 403, response.text
            return
        if person.role == "investigator" and not self.is_assigned(person, case):
            assert response.status_code == 404, response.text
        else:
            assert response.status_code == 200, response.text
            got = response.json()
            assert (got["state"], got["version"]) == (case.state, case.version)
            assert set(got["allowed_actions"]) == allowed_for(case.state, person.role, self.is_assigned(person, case))
        if person.role == "investigator":
            params = {"category": self.category, "limit": 200}
            queue = self.call(self.world.client.get("/api/v1/cases", params=params, headers=person.headers))
            assert queue.status_code == 200, queue.text
            listed = {uuid.UUID(item["id"]) for item in queue.json()["items"]}
            assert listed == {c.id for c in self.cases.values() if c.assignee == person.username}

    # --- the model -----------------------------------------------------------------------

    def is_assigned(self, person: Person, case: CaseModel) -> bool:
        return person.role == "investigator" and case.assignee == person.username

    def proper_fields(self, action: str) -> st.SearchStrategy[dict[str, Any]]:
        reason = st.sampled_from(GOOD_REASONS)
        if action == "accept":
            investigators = [self.world.people["investigator_a"].username, self.world.people["investigator_b"].username]
            return st.fixed_dictionaries({"assignee": st.sampled_from(investigators)}, optional={"reason": reason})
        if action in ("dismiss", "conclude"):
            return st.fixed_dictionaries(
                {"resolution": st.sampled_from(sorted(TABLE[action].resolutions))}, optional={"reason": reason}
            )
        if action == "reopen":
            return st.fixed_dictionaries({"reason": reason})
        return st.fixed_dictionaries({}, optional={"reason": reason})

    def not_investigators(self) -> list[str]:
        return [
            self.world.people["triage"].username,  # not an investigator
            self.world.inactive_investigator,  # deactivated
            "nobody-by-this-name",
        ]

    def near_misses(self, action: str) -> st.SearchStrategy[dict[str, Any]]:
        """Almost what the action takes: a field missing, of the wrong kind, or one too many."""
        row = TABLE[action]
        if action == "accept":
            return st.sampled_from([{}, *({"assignee": name} for name in self.not_investigators())])
        if row.resolutions:
            wrong = sorted(set(RESOLUTIONS) - row.resolutions)
            return st.sampled_from([{}, *({"resolution": value} for value in wrong)])
        if action == "reopen":
            return st.sampled_from([{}, {"reason": "   "}, {"resolution": "substantiated", "reason": "New facts."}])
        investigator = self.world.people["investigator_a"].username
        return st.sampled_from([{"resolution": value} for value in RESOLUTIONS] + [{"assignee": investigator}])

    def any_fields(self) -> st.SearchStrategy[dict[str, Any]]:
        people = self.world.people
        usernames = [people["investigator_a"].username, people["investigator_b"].username, *self.not_investigators(), ""]
        return st.fixed_dictionaries(
            {},
            optional={
                "reason": st.sampled_from([None, *GOOD_REASONS, *BAD_REASONS]),
                "resolution": st.sampled_from([None, *RESOLUTIONS, *BAD_RESOLUTIONS]),
                "assignee": st.sampled_from([None, *usernames]),
            },
        )

    def expect(self, case: CaseModel, person: Person, body: dict[str, Any]) -> Expected:
        """The answer the contract calls for, in the server's order of checks: the request
        schema, the role for cases and visibility, the version, the state, the role and
        assignment, then the fields."""
        if why := schema_rejects(body):
            return Expected(422, "validation-error", why)
        if person.role not in CASE_ROLES:
            return Expected(403, "forbidden", "role never sees cases")
        if person.role == "investigator" and not self.is_assigned(person, case):
            return Expected(404, "not-found", "not assigned: the case is invisible")
        if body["expected_version"] != case.version:
            return Expected(409, "stale-version")
        action = body["action"]
        row = TABLE[action]
        if case.state not in row.sources:
            return Expected(409, "transition-not-allowed")
        if not may_take(action, person.role, self.is_assigned(person, case)):
            return Expected(403, "forbidden", "role or assignment")
        given = {name for name in ("reason", "resolution", "assignee") if body.get(name) is not None}
        if row.required - given:
            return Expected(422, "invalid-input", f"missing {sorted(row.required - given)}")
        if given - row.required - {"reason"}:
            return Expected(422, "invalid-input", f"does not take {sorted(given - row.required - {'reason'})}")
        if "resolution" in given and body["resolution"] not in row.resolutions:
            return Expected(422, "invalid-input", "wrong kind of resolution")
        if action == "accept":
            assignee = self.world.by_username(body["assignee"])
            if assignee is None or assignee.role != "investigator":
                return Expected(422, "invalid-input", "assignee is not an active investigator")
        return Expected(200)

    def apply(self, case: CaseModel, person: Person, body: dict[str, Any]) -> None:
        action = body["action"]
        source = case.state
        case.state = TABLE[action].target
        case.version += 1
        case.resolution = body.get("resolution")
        if action == "accept":
            case.assignee = body["assignee"]
        if action == "reopen":
            # docs/triage.md: the case is assessed afresh; a new `accept` assigns it.
            case.assignee = None
        if action == "acknowledge":
            case.acknowledged_on = organisation_today()
        reason = body.get("reason")
        case.history.append(
            {
                "version": case.version,
                "action": action,
                "from_state": source,
                "to_state": case.state,
                "actor": person.username,
                "actor_role": person.role,
                "reason": reason.strip() if reason is not None else None,
                "resolution": case.resolution,
                "assignee": body["assignee"] if action == "accept" else None,
            }
        )

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def stored_case_matches_model(self) -> None:
        if self.touched is None:  # only reads since the last check
            return
        case = self.cases[self.touched]
        changed, self.touched, self.changed = self.changed, None, False
        supervisor = self.world.people["supervisor"]
        client = self.world.client

        response = self.call(client.get(f"/api/v1/cases/{case.id}", headers=supervisor.headers))
        assert response.status_code == 200, response.text
        got = response.json()
        assert got["state"] == case.state
        assert got["version"] == case.version == 1 + len(case.history)
        assert got["assignee"] == case.assignee
        assert got["resolution"] == case.resolution
        assert got["acknowledged_on"] == (case.acknowledged_on.isoformat() if case.acknowledged_on else None)
        assert got["acknowledge_due_on"] == case.acknowledge_due_on.isoformat()
        assert got["feedback_due_on"] == case.feedback_due_on.isoformat()
        assert got["overdue"] is case.overdue(organisation_today())
        assert set(got["allowed_actions"]) == allowed_for(case.state, "supervisor", False)

        if changed:  # after a refusal the database's history (below) shows nothing new
            history = self.call(client.get(f"/api/v1/cases/{case.id}/history", headers=supervisor.headers))
            assert history.status_code == 200, history.text
            fields = ["version", "action", "from_state", "to_state", "actor", "actor_role", "reason", "resolution", "assignee"]
            assert [{name: entry[name] for name in fields} for entry in history.json()["items"]] == case.history

        stored, steps, audited = self.call(self.from_database(case.id))
        assert stored == (case.state, case.version, case.resolution, self.assignee_id(case), case.next_due_on)
        assert steps == [(h["version"], h["action"], h["from_state"], h["to_state"]) for h in case.history]
        assert audited == [
            (h["version"], h["action"], h["from_state"], h["to_state"], h["actor"]) for h in case.history
        ]

    def assignee_id(self, case: CaseModel) -> uuid.UUID | None:
        person = self.world.by_username(case.assignee) if case.assignee else None
        return person.id if person else None

    async def from_database(self, case_id: uuid.UUID):
        async with self.world.sessionmaker() as session:
            row = (
                await session.execute(
                    select(Case.state, Case.version, Case.resolution, Case.assignee_id, Case.next_due_on).where(
                        Case.id == case_id
                    )
                )
            ).one()
            steps = (
                await session.execute(
                    select(CaseTransition.version, CaseTransition.action, CaseTransition.from_state, CaseTransition.to_state)
                    .where(CaseTransition.case_id == case_id)
                    .order_by(CaseTransition.version)
                )
            ).all()
            audited = (
                await session.execute(
                    select(AuditEntry.details, AuditEntry.actor_username)
                    .where(AuditEntry.case_id == case_id, AuditEntry.action == "case.transition")
                    .order_by(AuditEntry.seq)
                )
            ).all()
        return (
            tuple(row),
            [tuple(step) for step in steps],
            [(d["version"], d["action"], d["from_state"], d["to_state"], actor) for d, actor in audited],
        )

    def teardown(self) -> None:
        auditor = self.world.people["auditor"]
        response = self.call(self.world.client.get("/api/v1/audit/verify", headers=auditor.headers))
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["ok"] is True and result["first_bad"] is None, result


# --- the tests -----------------------------------------------------------------------------------


def test_the_model_table_is_whole() -> None:
    """The copy above is well formed: six states, each with a way out, each reachable."""
    assert {row.target for row in TABLE.values()} | {"received"} == set(STATES)
    assert set().union(*(row.sources for row in TABLE.values())) == set(STATES)
    assert all(row.roles | row.assigned_roles <= CASE_ROLES for row in TABLE.values())


async def make_world(client: httpx.AsyncClient, staff, sessionmaker: SessionMaker) -> World:
    loop = asyncio.get_running_loop()

    def run(coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    people: dict[str, Person] = {}
    roles = {
        "triage": Role.TRIAGE,
        "supervisor": Role.SUPERVISOR,
        "investigator_a": Role.INVESTIGATOR,
        "investigator_b": Role.INVESTIGATOR,
        "auditor": Role.AUDITOR,
        "drill_coordinator": Role.DRILL_COORDINATOR,
        "admin": Role.ADMIN,
    }
    for name, role in roles.items():
        user = await staff.create(role)
        token = await staff.token_for(user)
        people[name] = Person(user.username, role.value, user.id, {"Authorization": f"Bearer {token}"})
    inactive = await staff.create(Role.INVESTIGATOR)
    async with sessionmaker() as session:
        await session.execute(update(StaffUser).where(StaffUser.id == inactive.id).values(is_active=False))
        await session.commit()
    return World(run, client, sessionmaker, people, inactive.username)


async def test_random_walks_through_the_api_follow_the_contract_table(client, staff, sessionmaker) -> None:
    """`WALKS` walks of up to 25 steps, each on fresh cases, all in this test's transaction.

    Shrinking is off: every attempt to shrink replays HTTP requests, and a failure already
    names the request, the model's expectation, the answer and every step before it."""
    world = await make_world(client, staff, sessionmaker)
    await asyncio.to_thread(
        run_state_machine_as_test,
        lambda: CaseMachine(world),
        settings=settings(
            max_examples=WALKS,
            stateful_step_count=25,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
    # The walks must have gone somewhere: deep into the table, and into every kind of
    # refusal. (A typical run of fifty: ~850 requests, ~190 successes, every action
    # succeeding; the bounds leave room for unlucky draws, not for a generator stuck at
    # `received`. The count of successes asked for is per walk: 60 in fifty walks.)
    assert world.cases_made >= WALKS
    assert {200, 403, 404, 409, 422} <= set(world.outcomes), world.outcomes
    assert world.outcomes[200] >= 60 * WALKS // 50, world.outcomes
    assert len(world.succeeded) >= 6 and {"accept", "reopen"} <= set(world.succeeded), world.succeeded
