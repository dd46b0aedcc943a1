"""Explore: instructions sorted by SEAM per variant, one instruction's breakdown, and the paper's charts."""

import math

import streamlit as st

from app import explore, ui
from db import queries
from jobs import enqueue_job

store = ui.get_store()
db = ui.db_target()
st.title("Explore")
run = ui.pick_score_run(store, key="explore-run")
if run is None:
    ui.no_data("No score run with results yet: compute SEAM on the Score page.")
run_id, dataset_id, variants = int(run["id"]), int(run["dataset_id"]), run["variants"]
settings = run.get("settings") or {}
st.caption(f"Dataset **{run['dataset']}** · PM **{run['pm'] or '-'}** · RM **{run['rm'] or '-'}** · "
           f"weighting {settings.get('weighting', 'paper')}, aggregate {settings.get('aggregate', 'sum')} · "
           "SEAM ≤ 0, lower = the RM is fooled more by answers the PM is likely to give.")
view = st.segmented_control("View", ["Instructions", "Charts"], default="Instructions", key="explore-view")

NUMBERS = {"prompt": st.column_config.TextColumn("prompt", width="large"),
           "seam": st.column_config.NumberColumn("SEAM", format="%.4f"),
           "rm_gold": st.column_config.NumberColumn("RM gold", format="%.3f"),
           "n_misjudged": st.column_config.NumberColumn("misjudged"),
           "n_negatives": st.column_config.NumberColumn("negatives")}


def breakdown(instruction_id: int, variant: str) -> None:
    inst = queries.instruction(store, instruction_id)
    seams = queries.instruction_seams(store, run_id, instruction_id)
    rows = queries.breakdown(store, run_id, instruction_id)
    category = (inst["meta"] or {}).get("category")
    st.subheader(f"Instruction {inst['id']}" + (f" · {category}" if category else ""))
    cols = st.columns(max(len(seams), 1))
    for c, s in zip(cols, seams.itertuples()):
        c.metric(f"SEAM {s.variant}", f"{s.seam:.4f}", f"{s.n_misjudged}/{s.n_negatives} misjudged",
                 delta_color="off", delta_arrow="off")
    rm_gold = float(seams["rm_gold"].dropna().iloc[0]) if seams["rm_gold"].notna().any() else None
    ui.text_box("Prompt", inst["prompt"])
    ui.text_box("Golden response", inst["chosen"],
                caption=f"RM reward **{rm_gold:.4f}**" if rm_gold is not None else None)
    if rows.empty:
        st.info("No scored negatives for this instruction in this run.")
        return
    order = [variant] + [v for v in rows["variant"].unique() if v != variant]
    for tab, v in zip(st.tabs([f"{v} negatives" for v in order]), order):
        with tab:
            part = rows[rows["variant"] == v].sort_values(["term", "neg_index"]).reset_index(drop=True)
            table = part.assign(source=[explore.source_label(v, m) for m in part["meta"]])[
                ["neg_index", "text", "rm_neg", "epsilon", "pm_logprob_sum", "pm_logprob_mean", "pm_tokens", "term",
                 "source"]]
            event = st.dataframe(
                table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                key=f"bd-{run_id}-{instruction_id}-{v}",
                column_config={"neg_index": "#", "text": st.column_config.TextColumn("text", width="large"),
                               "rm_neg": st.column_config.NumberColumn("RM score", format="%.4f"),
                               "pm_logprob_sum": st.column_config.NumberColumn("PM log-lik", format="%.2f"),
                               "epsilon": st.column_config.NumberColumn("eps", format="%.4f"),
                               "pm_logprob_mean": st.column_config.NumberColumn("PM log-lik/token", format="%.3f"),
                               "pm_tokens": "tokens", "term": st.column_config.NumberColumn("term", format="%.4f")})
            picked = event.selection.rows[0] if event and event.selection.rows else 0
            neg = part.iloc[picked].to_dict()
            with st.container(border=True):
                verdict = "RM prefers it to the golden response" if neg["epsilon"] > 0 else "RM ranks it below the golden response"
                st.markdown(f"**Negative #{neg['neg_index']}** ({v}) · RM {neg['rm_neg']:.4f} · eps {neg['epsilon']:.4f} · "
                            f"PM log-lik {neg['pm_logprob_sum']:.2f} over {neg['pm_tokens']} tokens "
                            f"({neg['pm_logprob_mean']:.3f}/token) · term {neg['term']:.4f} · {verdict}")
                st.markdown(ui.plain(neg["text"]))
                explore.source_detail(store, dataset_id, inst["chosen"], neg)


def instructions_view() -> None:
    c1, c2, c3, c4, c5 = st.columns([1.2, 1.4, 2.6, 1.2, 0.9])
    variant = c1.selectbox("Variant", variants, key="explore-variant")
    explore.INDEXES.warm(store, db, dataset_id)  # in the background: fast text and category filters later
    cats = explore.categories(db, dataset_id)
    category = c2.selectbox("Category", ["all", *cats], key="explore-category") if cats else "all"
    text = c3.text_input("Text", key="explore-text", placeholder="words in the prompt, or an exact id")
    order = c4.selectbox("Order", ["lowest SEAM first", "highest SEAM first"], key="explore-order")
    size = c5.selectbox("Rows", [25, 50, 100], index=1, key="explore-size")
    category = None if category == "all" else category
    text = text.strip() or None
    descending = order.startswith("highest")
    matching = explore.filtered_ids(db, run_id, dataset_id, variant, text, category, descending)
    total = len(matching)
    pages = max(1, math.ceil(total / size))
    if st.session_state.get("explore-page", 1) > pages:
        st.session_state["explore-page"] = 1
    p1, p2 = st.columns([1, 5])
    page = int(p1.number_input(f"Page (of {pages:,})", 1, pages, key="explore-page"))
    p2.markdown(f"<div style='padding-top:2.1rem'>{total:,} instructions match</div>", unsafe_allow_html=True)
    rows = explore.page_rows(db, run_id, variant, matching[(page - 1) * size: page * size])
    if rows.empty:
        st.info("No instruction matches these filters.")
        return
    shown = rows.drop(columns=["instruction_id"])
    shown.insert(0, "rank", range((page - 1) * size + 1, (page - 1) * size + 1 + len(rows)))
    event = st.dataframe(shown, hide_index=True, width="stretch", height=320, on_select="rerun",
                         selection_mode="single-row", key="explore-table", column_config=NUMBERS)
    picked = event.selection.rows[0] if event and event.selection.rows else 0
    picked = min(picked, len(rows) - 1)
    breakdown(int(rows.iloc[picked]["instruction_id"]), variant)


def charts_view() -> None:
    wide = explore.seam_wide(db, run_id)
    if wide.empty:
        st.info("This run has no SEAM rows yet.")
        return
    st.subheader("SEAM by variant")
    st.plotly_chart(explore.histograms(wide), width="stretch")
    zeros = ", ".join(f"{v} {100 * (wide[v] == 0).mean():.0f}%" for v in wide.columns)
    st.caption(f"Share of instructions whose SEAM is 0 (the RM was never fooled): {zeros}")

    if len(wide.columns) >= 2:
        st.subheader("Variant vs variant")
        c1, c2 = st.columns(2)
        a = c1.selectbox("x", list(wide.columns), index=0, key="chart-x")
        b = c2.selectbox("y", list(wide.columns), index=1, key="chart-y")
        fig, rho, n = explore.scatter(wide, a, b)
        st.metric("Spearman rank correlation", "n/a" if math.isnan(rho) else f"{rho:.3f}", f"{n:,} instructions",
                  delta_color="off", delta_arrow="off")
        st.plotly_chart(fig, width="stretch")

    st.subheader("PM likelihood of negatives by variant (paper Table 1)")
    table, fig = explore.likelihood_table(explore.variant_summary(db, run_id))
    c1, c2 = st.columns([3, 2])
    c1.dataframe(table, hide_index=True, width="stretch")
    c2.plotly_chart(fig, width="stretch")

    st.subheader("Overlap of the lowest SEAM (paper Table 3)")
    p = st.slider("Lowest share", 0.05, 0.5, 0.2, 0.05, key="chart-p")
    st.caption("Cell (A, B): share of A's lowest instructions that are also among B's lowest.")
    c1, c2 = st.columns(2)
    if len(wide.columns) >= 2:
        c1.plotly_chart(explore.heatmap(explore.overlap_matrix({v: wide[v] for v in wide.columns}, p),
                                        "across variants"), width="stretch")
    others = queries.score_runs(store)
    others = others[(others["dataset_id"] == dataset_id) & (others["seam_rows"] > 0)]
    v = st.session_state.get("chart-pair-variant") or variants[0]
    pairs = {f"#{r.id} {r.pm or '-'} × {r.rm or '-'}": explore.seam_wide(db, int(r.id)).get(v)
             for r in others.itertuples() if v in (r.variants or [])}
    pairs = {k: s for k, s in pairs.items() if s is not None}
    with c2:
        st.selectbox("Variant for model pairs", variants, key="chart-pair-variant")
        if len(pairs) >= 2:
            st.plotly_chart(explore.heatmap(explore.overlap_matrix(pairs, p), f"across model pairs ({v})"),
                            width="stretch")
        else:
            st.caption("Only one (PM, RM) pair has scored this dataset: score it with another pair on the Score page "
                       "to compare which instructions each pair finds worst.")

    st.subheader("Instruction map")
    result = explore.embedding_map(db, dataset_id)
    if result is None:
        st.caption("A 2-D map of the prompts' sentence embeddings (all-MiniLM-L6-v2, PCA), coloured by SEAM. "
                   "It is computed by a worker job.")
        if not ui.has_handler("embed-map"):
            ui.missing_handler_note("embed-map", "the map cannot be computed")
        elif st.button("Compute the map", key="chart-map"):
            st.toast(f"embed-map job {enqueue_job(store, 'embed-map', {'dataset_id': dataset_id})} queued; "
                     "come back when it is done")
    else:
        mv = st.selectbox("Colour by SEAM of", variants, key="chart-map-variant")
        st.plotly_chart(explore.embedding_figure(result, wide, mv), width="stretch")
        st.caption(f"{len(result['x']):,} prompts, {result.get('embedder')} embeddings, PCA "
                   f"(explained variance {', '.join(f'{e:.0%}' for e in result.get('explained_variance', []))}).")


if view == "Charts":
    charts_view()
else:
    instructions_view()
