"""CarePlan: only CP-IS plans (child protection, looked after, unborn) are mapped; any other CarePlan is skipped.

A general care plan is clinical information with no safeguarding bearing, so passing it on would share more than the
protocol needs; it is skipped rather than rejected because nothing is wrong with it.
"""

from __future__ import annotations

from typing import Any

from adapters.health.cpis import cp_notice, is_cpis_flag, plan_kind
from adapters.health.fhir_common import Context, codes_of


def map_careplan(plan: Any, ctx: Context, base: str) -> list[dict[str, Any]]:
    codes = codes_of(plan.category)
    if plan_kind(codes) is None and not is_cpis_flag(codes):
        return []
    addressed = [ctx.resources.get(r.reference or "") for r in plan.addresses or []]
    extra = [pair for cond in addressed if cond is not None and hasattr(cond, "code") for pair in codes_of(cond.code)]
    return [cp_notice(plan, ctx, base, subject=plan.subject, codes=codes, status=plan.status, period=plan.period,
                      author=plan.author, extra_codes=extra)]
