"""Annotate: blind pairwise judgements (keys 1 / 2 / t / b / s), RM-vs-human mismatch, agreement, exports."""

import math
import time

import plotly.graph_objects as go
import streamlit as st

from app import annotate as ann
from app import ui
from jobs import enqueue_job

KEYS = (("1", "Response 1 is better", "1"), ("2", "Response 2 is better", "2"), ("t", "Tie", "T"),
        ("b", "Both bad", "B"), ("s", "Skip", "S"))

store = ui.get_store()
st.title("Annotate")
run = ui.pick_score_run(store, key="ann-run")
if run is None:
    ui.no_data("No score run with results yet: annotation pairs come from a scored RL set (Score page).")
run_id = int(run["id"])

with st.sidebar:
    annotator = st.text_input("Annotator", key="ann-name", placeholder="your name").strip()
    mode = st.radio("Pairs", ann.MODES, key="ann-mode",
                    help="golden vs negative: the golden response against one of the variant's negatives; "
                         "PM samples: two responses the policy model sampled (a generate-samples job)")
    variant = st.selectbox("Variant", [v for v in run["variants"]], key="ann-variant",
                           help="whose negatives are judged, and whose SEAM orders the queue")
    order = st.radio("Queue order", ann.ORDERS, key="ann-order")
    with st.expander("Guidelines", expanded=False):
        st.markdown(ann.GUIDELINES)

st.session_state.setdefault("ann-skipped", set())
st.session_state.setdefault("ann-recorded", set())


def on_choice(key: str) -> None:
    item, shown = st.session_state.get("ann-current"), st.session_state.get("ann-shown-at")
    if item is None:
        return
    if key == "s":
        st.session_state["ann-skipped"].add(item.key)
        st.session_state["ann-last"] = "skipped"
        return
    if (annotator, item.key) in st.session_state["ann-recorded"]:
        return  # a second key press that arrived before the page moved on
    ann.record(store, item, key, annotator, run_id, None if shown is None else round(time.time() - shown, 2))
    st.session_state["ann-recorded"].add((annotator, item.key))
    st.session_state["ann-last"] = f"saved: {dict((k, label) for k, label, _ in KEYS)[key].lower()}"


tab_go, tab_results, tab_export = st.tabs(["Annotate", "Results", "Export"])

with tab_go:
    judged = ann.judgements(store, run_id, variant)
    human = judged[judged["source"] == "human"] if len(judged) else judged
    rate = ann.mismatch(human)
    mine = int((human["annotator"] == annotator).sum()) if len(human) and annotator else 0
    total = ann.queue_size(store, run, mode, variant)
    c1, c2, c3 = st.columns(3)
    c1.metric("RM-vs-human mismatch", "n/a" if math.isnan(rate.estimate) else f"{100 * rate.estimate:.1f}%",
              f"n={rate.n}" + ("" if math.isnan(rate.low) else f", 95% CI {100 * rate.low:.0f}-{100 * rate.high:.0f}%"),
              delta_color="off", delta_arrow="off", help="share of decisive human judgements (1 or 2) where the RM preferred the other response")
    c2.metric("Your judgements", mine)
    c3.metric("Pairs in this queue", total)
    if total:
        st.progress(min(mine / total, 1.0))
    if not annotator:
        st.info("Enter your name in the sidebar (Annotator) to start.")
        st.stop()
    if mode == ann.MODES[1] and total == 0:
        st.info("No PM samples yet for this dataset. A worker job samples the policy model (2 responses per "
                "instruction) and stores them, with the RM's reward of each.")
        if not ui.has_handler("generate-samples"):
            ui.missing_handler_note("generate-samples", "PM samples cannot be generated")
        else:
            c1, c2, c3, c4 = st.columns(4)
            n = c1.number_input("Instructions", 1, value=20, key="gen-n")
            k = c2.number_input("Samples each", 2, value=2, key="gen-k")
            new = c3.number_input("Max new tokens", 4, value=48, key="gen-tokens")
            seed = c4.number_input("Seed", 0, value=0, key="gen-seed")
            if st.button("Generate PM samples", type="primary", key="gen-go"):
                payload = {"pm_model_id": int(run["pm_model_id"]), "dataset_id": int(run["dataset_id"]),
                           "n_instructions": int(n), "samples": int(k), "max_new_tokens": int(new), "seed": int(seed),
                           "order": "lowest-seam" if order == ann.ORDERS[0] else "random", "score_run_id": run_id,
                           "variant": variant, "rm_model_id": int(run["rm_model_id"]) if run.get("rm_model_id") else None}
                st.toast(f"generate-samples job {enqueue_job(store, 'generate-samples', payload)} queued")
        st.stop()
    item = ann.next_item(store, run, mode, variant, order, annotator, st.session_state["ann-skipped"])
    if item is None:
        st.success("Queue done: you have judged (or skipped) every pair in it.")
        st.stop()
    if st.session_state.get("ann-current") is None or st.session_state["ann-current"].key != item.key:
        st.session_state["ann-shown-at"] = time.time()
    st.session_state["ann-current"] = item
    if st.session_state.get("ann-last"):
        st.caption(st.session_state.pop("ann-last"))
    ui.text_box("Prompt", item.prompt)
    left, right = st.columns(2)
    with left:
        ui.text_box("Response 1", item.left.text)
    with right:
        ui.text_box("Response 2", item.right.text)
    cols = st.columns(len(KEYS))
    for c, (key, label, shortcut) in zip(cols, KEYS):
        c.button(label, key=f"ann-key-{key}", shortcut=shortcut, on_click=on_choice, args=(key,), width="stretch",
                 type="primary" if key in "12" else "secondary")
    st.caption("Keys: 1 / 2 pick a response, t tie, b both bad, s skip "
               "(click the page first when the cursor is in a text box).")

with tab_results:
    judged = ann.judgements(store, run_id, variant)
    if judged.empty:
        st.info("No judgements for this score run yet.")
    else:
        st.subheader("RM-vs-human mismatch (paper Figure 4)")
        table = ann.mismatch_table(judged)
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("mismatch", "ci_low", "ci_high")})
        fig = go.Figure(go.Bar(x=[f"{r.source} · {r.mode}" for r in table.itertuples()], y=table["mismatch"],
                               error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["mismatch"],
                                            arrayminus=table["mismatch"] - table["ci_low"])))
        fig.update_layout(yaxis_title="mismatch rate (95% CI)", yaxis_range=[0, 1], height=320, margin=dict(t=20, b=10))
        st.plotly_chart(fig, width="stretch")
        st.subheader("Agreement between annotators")
        agree = ann.agreement(judged)
        c1, c2 = st.columns([1, 3])
        c1.metric("Fleiss' kappa", "n/a" if math.isnan(agree["fleiss"]) else f"{agree['fleiss']:.3f}",
                  f"{agree['items']} items with 2+ annotators", delta_color="off", delta_arrow="off")
        if len(agree["pairs"]):
            c2.dataframe(agree["pairs"], hide_index=True, width="stretch",
                         column_config={"cohen_kappa": st.column_config.NumberColumn("Cohen's kappa", format="%.3f"),
                                        "agreement": st.column_config.NumberColumn(format="%.3f")})
        else:
            c2.caption("Cohen's kappa needs two annotators who judged the same pairs.")
        st.subheader("Does SEAM predict the mismatch?")
        auc, n = ann.seam_auroc(judged)
        st.metric(f"AUROC of SEAM ({variant}) for RM-vs-human mismatch", "n/a" if math.isnan(auc) else f"{auc:.3f}",
                  f"{n} decisive judgements with a SEAM", delta_color="off", delta_arrow="off",
                  help="1.0: every mismatch has a lower SEAM than every agreement; 0.5: no better than chance")

with tab_export:
    judged = ann.judgements(store, run_id, variant)
    if judged.empty:
        st.info("Nothing to export yet.")
    else:
        st.caption(f"{len(judged)} judgements of score run #{run_id} (every annotator and source).")
        c1, c2, c3 = st.columns(3)
        c1.download_button("JSONL", ann.to_jsonl(judged), f"annotations-run{run_id}.jsonl", "application/json")
        c2.download_button("Argilla JSON", ann.to_argilla(judged), f"annotations-run{run_id}.argilla.json",
                           "application/json")
        c3.download_button("Label Studio JSON", ann.to_label_studio(judged), f"annotations-run{run_id}.labelstudio.json",
                           "application/json")
        with st.expander("Label Studio labelling config"):
            st.code(ann.LABEL_STUDIO_CONFIG, language="xml")
