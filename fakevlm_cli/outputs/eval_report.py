"""`fakevlm eval`'s report on a terminal (Rich): metrics beside the paper's figures, operating points, the
calibration fitted, localisation scores. Untrusted text goes through `render.plain`."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from fakevlm_cli.core.text import safe_text
from fakevlm_cli.outputs.render import plain

_EVAL_COLUMNS = (("n", "n", "{}"), ("accuracy", "Acc", "{:.3f}"), ("accuracy_real", "Acc real", "{:.3f}"),
                 ("accuracy_fake", "Acc fake", "{:.3f}"), ("f1_real_positive", "F1 (real+)", "{:.3f}"),
                 ("f1_macro", "F1 macro", "{:.3f}"), ("roc_auc_fake_positive", "AUC", "{:.3f}"),
                 ("n_unknown", "unknown", "{}"), ("n_error", "errors", "{}"))


def _cell(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def eval_tables(run) -> list:
    """Categories × metrics (overall last), then ours beside the paper's figures, then the conventions."""
    out: list = [_metrics_table(run)]
    if run.request.args.bench == "folder":  # the paper's FF++ metric, shown first for labelled folders
        out.append(_auc_line(run.metrics["overall"]))
    out.append(_operating_table(run.metrics["overall"]))
    if run.paper:
        out.append(_paper_table(run))
    if run.metrics.get("localisation", {}).get("n"):
        out.append(_localisation_table(run.metrics["localisation"]))
    if getattr(run, "fitted", None) is not None:
        out.append(_fitted_lines(run))
    notes = [n for n in run.loaded.notes if n.startswith(("localisation over", "text metrics"))]
    return out + [plain(n, style="dim") for n in [*notes, *_eval_notes(run.metrics)]] + _upstream_line(run.metrics)


def _localisation_table(scores: dict) -> Table:
    """--localise: pointing game and energy inside the human boxes, the model's maps beside the centre prior."""
    methods = ", ".join(scores.get("methods") or []) or "no map"
    table = Table(title=plain(f"localisation · {scores['n']} images with boxes ({methods})"), title_justify="left")
    for header in ("", "pointing game", "energy in boxes"):
        table.add_column(header, justify="left" if not header else "right")
    table.add_row("model's maps", _cell(scores["pointing_game"], "{:.3f}"), _cell(scores["energy_in_boxes"], "{:.3f}"))
    prior = scores["centre_prior"]
    table.add_row("centre prior", _cell(prior["pointing_game"], "{:.3f}"), _cell(prior["energy_in_boxes"], "{:.3f}"))
    extra = []
    if scores.get("n_without_map"):
        extra.append(f"{scores['n_without_map']} without a map (counted as misses)")
    if scores.get("n_boxes_outside_crop"):
        extra.append(f"{scores['n_boxes_outside_crop']} with every box outside the centre crop the model saw")
    if extra:
        table.caption = "; ".join(extra)
    return table


def _operating_table(overall: dict) -> Table:
    """Operating points of P(fake) (TPR at 1 % and 5 % FPR, EER), calibration error and the reliability diagram."""
    points = overall.get("operating_points") or {}
    table = Table(title="operating points of P(fake) (fake if P(fake) >= threshold)", title_justify="left")
    for header in ("point", "threshold", "TPR", "FPR", ""):
        table.add_column(header, justify="left" if header in ("point", "") else "right")
    for target, row in (points.get("tpr_at_fpr") or {}).items():
        if row is None:
            table.add_row(f"FPR ≤ {float(target):.0%}", "—", "—", "—", "needs real and fake images")
            continue
        table.add_row(f"FPR ≤ {float(target):.0%}", _cell(row["threshold"], "{:.6g}"), _cell(row["tpr"], "{:.3f}"),
                      _cell(row["fpr"], "{:.3f}"), f"{points.get('n_real', 0)} real images")
    table.add_row("EER", _cell(points.get("eer_threshold"), "{:.6g}"), "", _cell(points.get("eer"), "{:.3f}"),
                  "where FPR and FNR cross")
    table.add_section()
    ece = f"ECE {_cell(overall.get('ece'), '{:.3f}')}"
    if overall.get("ece_calibrated") is not None:
        ece += f" (calibrated: {overall['ece_calibrated']:.3f})"
    table.add_row("reliability", "mean P(fake)", "fraction fake", "n", ece)
    for row in overall.get("reliability") or []:
        if row["n"]:
            bar = "█" * round(20 * row["fraction_fake"])
            table.add_row(f"{row['lo']:.1f}–{row['hi']:.1f}", f"{row['mean_p_fake']:.3f}",
                          f"{row['fraction_fake']:.3f}", str(row["n"]), bar)
    return table


def _fitted_lines(run) -> Text:
    cal = run.fitted
    fit = cal.fit
    line = Text.assemble(("calibration fitted: ", "bold"),
                         f"threshold P(fake) >= {cal.threshold:.6g} for a target FPR of {cal.target_fpr:.2%} "
                         f"(here FPR {fit['fpr']:.3f}, TPR {fit['tpr']:.3f}; expected FPR on new images "
                         f"{fit['expected_fpr']:.3%})")
    if cal.mapping is not None:
        line.append(f"; calibrated P(fake) = sigmoid({cal.mapping.a:.4g}·logit(P) {cal.mapping.b:+.4g})")
    line.append(f"; saved to {run.request.args.fit_calibration}")
    if fit.get("warning"):
        line.append("\nwarning: " + fit["warning"], style="yellow")
    return line


def _metrics_table(run) -> Table:
    metrics = run.metrics
    text = metrics["overall"].get("text")
    scored = sum(1 for item in run.loaded.items if getattr(item, "scored", True))
    extra = len(run.loaded.items) - scored
    title = f"{run.request.args.bench} · {scored} items" + (f" (+{extra} for localisation only)" if extra else "")
    table = Table(title=plain(title), title_justify="left")
    table.add_column("category", no_wrap=True, min_width=7)
    for _, header, _ in _EVAL_COLUMNS:
        table.add_column(header, justify="right")
    if text:
        table.add_column("ROUGE-L", justify="right")
        table.add_column("CSS", justify="right")

    def add(name: str, block: dict, style: str = "") -> None:
        cells = [_cell(block.get(key), fmt) for key, _, fmt in _EVAL_COLUMNS]
        if text:
            t = block.get("text") or {}
            cells += [_cell(t.get("rouge_l_f"), "{:.3f}"), _cell(t.get("css"), "{:.3f}")]
        table.add_row(plain(name), *cells, style=style)

    for name, block in metrics["categories"].items():
        add(name, block)
    table.add_section()
    add("overall", metrics["overall"], style="bold")
    return table


def _auc_line(overall: dict) -> Text:
    line = Text.assemble(("ROC-AUC of P(fake): ", "bold"),
                         (_cell(overall.get("roc_auc_fake_positive"), "{:.4f}"), "bold cyan"))
    per = overall.get("roc_auc_fake_category_vs_all_real") or {}
    if len(per) > 1:
        line.append("   per fake category vs all real: " +
                    ", ".join(f"{safe_text(k)} {_cell(v, '{:.3f}')}" for k, v in per.items()))
    return line


def _paper_table(run) -> Table:
    """Ours beside the paper: no diffs on a subset (the paper's figures cover the whole test set); text metrics'
    diffs labelled, since the paper's protocol for them is unknown; the best other row with its criterion."""
    subset = next((row["subset"] for row in run.paper if row.get("subset")), None)
    title = f"beside the paper ({run.paper_bench}; arXiv 2503.14905)"
    paper = Table(title=plain(title + (f" · subset: not comparable ({subset})" if subset else "")),
                  title_justify="left")
    criterion = next((row["best_other_criterion"] for row in run.paper if row.get("best_other_criterion")), None)
    other_header = "best other in paper" + (f" ({criterion})" if criterion else "")
    for header in ("metric", "ours", "FakeVLM paper", "diff", other_header):
        paper.add_column(header, justify="left" if header in ("metric", other_header) else "right")
    for row in run.paper:
        paper.add_row(row["metric"], _cell(row["ours"], "{:.3f}"), f"{row['paper']:.3f}", _diff_cell(row),
                      _other_cell(row))
    return paper


def _diff_cell(row: dict) -> Text:
    diff, note = row["diff"], row.get("note")
    if row.get("subset"):
        return Text(note or "subset: not comparable", style="dim")
    if diff is None:
        return Text("—")
    if note:  # protocol unknown: a difference, not a reproduction gap
        return Text(f"{diff:+.3f} ({note})", style="dim")
    return Text(f"{diff:+.3f}", style="green" if diff >= -0.01 else "red")


def _other_cell(row: dict) -> str:
    other = "" if row.get("best_other") is None else f"{row['best_other']:.3f} ({row['best_other_model']})"
    if row.get("leader") is not None:
        other += f"; best on this metric: {row['leader']:.3f} ({row['leader_model']})"
    return other


def _eval_notes(metrics: dict) -> list[str]:
    notes = []
    if metrics["overall"].get("n_missing"):
        notes.append(f"{metrics['overall']['n_missing']} images missing (not scored)")
    if metrics["overall"].get("text"):
        info = metrics["conventions"].get("text") or {}
        notes.append("text metrics: " + (info.get("protocol") or "?"))
    notes.append("F1 (real+) uses real as the positive class, as the paper; unknown verdicts count as wrong")
    return notes


def _upstream_line(metrics: dict) -> list[Text]:
    """How many answers had no verdict, and what that does to the gap to upstream's accounting (eval.py gives them
    a random label); under --verdict-from upstream, how many labels were drawn at random and with which seed."""
    acc = metrics.get("upstream_accounting")
    if not acc:
        return []
    n, unknown = acc["n"], acc["n_unknown"]
    if acc.get("random_labels") is not None:
        line = (f"upstream's parse (scripts/eval.py): {acc['random_labels']} of {n} answers had neither 'real' nor "
                f"'fake' and were labelled at random (seed {acc['seed']})")
        if unknown:
            line += f"; {unknown} without text to parse counted wrong"
        return [Text(line, style="dim")]
    if not unknown:
        return [Text(f"no verdict: 0 of {n} answers; upstream's accounting gives the same accuracy", style="dim")]
    return [Text(f"no verdict: {unknown} of {n} answers (counted wrong); upstream's eval.py labels such an answer "
                 f"at random: its accuracy could be up to {acc['accuracy_gap_max']:.3f} higher, expected "
                 f"{acc['accuracy_gap_expected']:.3f} higher", style="yellow")]
