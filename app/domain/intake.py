"""What a report may say about itself in the clear: channels, categories, units, languages.

Categories follow the kinds of misconduct the ACRC's reporting rules and Korean
municipalities' clean-window channels distinguish. They are configurable
(`CLEANWINDOW_INTAKE__CATEGORIES`); these are the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    CITIZEN = "citizen"
    EMPLOYEE = "employee"


class Language(StrEnum):
    KO = "ko"
    EN = "en"


CHANNEL_LABELS = {
    Channel.CITIZEN: {"ko": "시민 신고", "en": "Citizen report"},
    Channel.EMPLOYEE: {"ko": "내부 직원 신고", "en": "Employee report"},
}

CODE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


LABEL_MAX_LENGTH = 200


@dataclass(frozen=True)
class Option:
    """A category or organisation unit: a stable code and its labels. Configured ones are
    checked against `CODE_PATTERN` and `LABEL_MAX_LENGTH` by the settings."""

    code: str
    ko: str
    en: str


DEFAULT_CATEGORIES = [
    Option(code="bribery", ko="금품수수 및 부정청탁", en="Bribery and improper solicitation"),
    Option(code="embezzlement", ko="공금 횡령·유용", en="Embezzlement and misuse of public funds"),
    Option(code="contracts_permits", ko="계약·인허가 비리", en="Rigged contracts and permits"),
    Option(code="subsidies", ko="보조금 부정수급", en="Subsidy fraud"),
    Option(code="hiring", ko="채용 비리", en="Hiring fraud"),
    Option(code="abuse_of_power", ko="갑질·직권남용", en="Abuse of power (gapjil)"),
    Option(code="conflict_of_interest", ko="이해충돌", en="Conflicts of interest"),
    Option(code="other", ko="기타", en="Other"),
]

DEFAULT_ORG_UNITS = [
    Option(code="mayor_office", ko="시장실", en="Mayor's office"),
    Option(code="planning_finance", ko="기획재정국", en="Planning and finance"),
    Option(code="construction_transport", ko="건설교통국", en="Construction and transport"),
    Option(code="welfare", ko="복지국", en="Welfare"),
    Option(code="environment", ko="환경국", en="Environment"),
    Option(code="human_resources", ko="인사과", en="Human resources"),
    Option(code="district_offices", ko="구청·주민센터", en="District and community offices"),
    Option(code="public_corporations", ko="산하 공공기관", en="Affiliated public corporations"),
]
