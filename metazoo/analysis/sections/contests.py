"""Section 1b: the head-to-head contests the registry declares (e.g. principled iMAML against
heuristic Reptile), paired by seed at every training k, each method under its own protocol."""

from __future__ import annotations

from metazoo.analysis import report as rpt
from metazoo.analysis.config import CompareConfig
from metazoo.analysis.grid import k_label
from metazoo.analysis.methods import contests
from metazoo.analysis.sections.second_order import final_values
from metazoo.stats import differences_by_seed, paired_by_seed


def blocks(config: CompareConfig, records: list[dict], metric: str) -> list:
    final = max(config.test_steps)
    key = f"{metric}@{final}"
    blocks: list = []
    for name, rival in contests(config.algorithms):
        blocks.append(rpt.heading(f"1b. {name} or {rival}?"))
        rows, verdicts = [], []
        for k in config.train_steps:
            own = final_values(records, name, k, key)
            other = final_values(records, rival, k, key)
            gap = paired_by_seed(own, other)
            if gap.diverged:
                verdict = "a run diverged"
            else:
                winner = gap.winner(name, rival, higher_is_better=metric == "accuracy")
                verdict = f"{winner} better" if winner else "no difference resolved"
            rows.append([k_label(k), rpt.cell(list(own.values()), "seeds"),
                         rpt.cell(list(other.values()), "seeds"), rpt.cell(differences_by_seed(own, other), "seeds"),
                         verdict])
            verdicts.append(f"k = {k_label(k)}: {verdict}")
        blocks += [rpt.paragraph(
            f"Query {metric} after {final} test steps, each method under its own settings and "
            f"test-time adaptation, mean over seeds ± 95% t-interval; the difference is paired "
            "by seed (same task stream and held-out tasks)."),
            rpt.table(["train k", name, rival, f"{name} − {rival}", "verdict"], rows),
            rpt.bullets([f"{name} against {rival}: " + "; ".join(verdicts) + "."])]
    return blocks
