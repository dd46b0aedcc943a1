"""Runs: one click to filter (or augment) by SEAM and run PPO, GRPO, RLOO or best-of-n; live curves, results
with CIs, lineage."""

import streamlit as st

from app import forms, ui
from app import runs as R
from db import queries
from jobs import enqueue_job

BASELINES = {"random": "random removal", "perplexity": "PM perplexity", "reward_gap": "reward gap",
             "full": "full RL set (no removal)"}
LABEL_BASELINES = {"oracle": "oracle (positive control)", "skill-prior": "skill prior"}
PPO_FIELDS = ("max_steps", "per_device_train_batch_size", "learning_rate", "kl_coef", "response_length", "temperature",
              "lora", "device")

store = ui.get_store()
st.title("Runs")

with st.container(border=True):
    st.subheader("Launch")
    run = ui.pick_score_run(store, key="runs-score-run", label="SEAM from score run")
    if run is None:
        st.info("Compute SEAM first (Score page): the runs filter or augment the RL set by it.")
    else:
        c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
        variants = c1.multiselect("Variants (SEAM ranks averaged over them)", run["variants"], default=run["variants"],
                                  key="runs-variants")
        p = c2.slider("Drop the lowest share", 0.05, 0.5, 0.2, 0.05, key="runs-p")
        seeds_text = c3.text_input("Seeds", "0", key="runs-seeds", help="space-separated, one RL run per arm and seed")
        label = R.label_file(ui.project_folder(store))
        # a world-v2 study (it has a label): its PM and RM tokenize differently, which PPO cannot take; GRPO can
        method = c4.selectbox("RL method", list(R.METHODS), format_func=R.METHODS.get, key="runs-method",
                              index=list(R.METHODS).index("grpo") if label else 0,
                              help="the trainer of every arm; PPO settings below are mapped onto it (docs/experiments.md)"
                                   "; PPO needs an RM that shares the policy's tokenizer")
        offered = {**BASELINES, **(LABEL_BASELINES if label else {})}
        st.markdown("**Baselines**")
        cols = st.columns(len(offered))
        baselines = [b for c, (b, text) in zip(cols, offered.items())
                     if c.checkbox(text, value=b in ("random", "full"), key=f"runs-base-{b}")]
        if label:
            st.caption(f"This project has an on-policy label ({label}): the oracle arm drops the instructions it marks "
                       "most harmful, the positive control that must beat the full set if the experiment can show an effect.")
        ppo: dict = {}
        trainer: dict = {}
        try:
            from seam.train.config import PPOConfig

            with st.expander("PPO settings" + ("" if method == "ppo" else f" (mapped onto {R.METHODS[method]})")):
                ppo = forms.dataclass_form(PPOConfig, key="runs-ppo", only=PPO_FIELDS, columns=4)
                if method != "ppo":
                    trainer["num_generations"] = int(st.number_input(
                        "num_generations", 2, 64, 4, key="runs-num-generations",
                        help="completions sampled per prompt (GRPO / RLOO group size; best-of-n's n)"))
        except Exception as exc:  # noqa: BLE001 - training is an optional back end for this page
            st.caption(f"PPO settings unavailable ({type(exc).__name__}: {exc}); the job uses its defaults.")
        try:
            seeds = [int(s) for s in seeds_text.split()] or [0]
        except ValueError:
            st.error(f"Seeds must be whole numbers separated by spaces, got {seeds_text!r}")
            seeds = []
        payload = {"score_run_id": int(run["id"]), "variants": variants, "p": float(p), "baselines": baselines,
                   "seeds": seeds, "ppo": ppo, "method": method, **({"trainer": trainer} if trainer else {}),
                   **({"label": label} if label and set(baselines) & set(LABEL_BASELINES) else {})}
        b1, b2 = st.columns(2)
        missing = []
        name = R.METHODS[method]
        for col, kind, text in ((b1, "filter-ppo", f"Drop the lowest {p:.0%} by SEAM and run {name}"),
                                (b2, "augment-ppo", f"Augment, retrain, run {name}")):
            ready = ui.has_handler(kind)
            missing += [] if ready else [kind]
            if col.button(text, type="primary" if ready else "secondary", key=f"runs-go-{kind}", width="stretch",
                          disabled=not ready or not variants or not seeds):
                st.toast(f"{kind} job {enqueue_job(store, kind, payload)} queued")
        if missing:
            ui.missing_handler_note(missing, "these actions cannot run yet (the training back end is not installed)")


@st.fragment(run_every=ui.REFRESH_S)
def live() -> None:
    jobs = queries.latest_jobs(store, limit=50)
    active = jobs[jobs["kind"].isin(["filter-ppo", "augment-ppo"])]
    runs = R.runs_frame(store)
    running = runs[runs["status"].isin(["running", "queued"])] if len(runs) else runs
    if active.empty and running.empty:
        return
    st.subheader("Jobs")
    for job_id in active.head(3)["id"].tolist():
        with st.container(border=True):
            ui.job_card(store, int(job_id), key="runs")
    if len(running):
        ids = running["id"].tolist()
        names = queries.metric_names(store, ids)
        if names:
            labels = {int(r["id"]): f"#{r['id']} {R.arm_of(r)}" for r in running.to_dict("records")}
            first = R.default_curve(names)
            metric = st.selectbox("Training curve (running)", names, key="runs-live-metric",
                                  index=names.index(first) if first in names else 0)
            st.plotly_chart(R.curves_figure(queries.metrics_for(store, ids, [metric]), labels, metric), width="stretch")


live()

runs = R.runs_frame(store)
st.subheader("Results")
if runs.empty:
    st.info("No runs yet. Launch one above; every arm (SEAM filter, each baseline, each seed) becomes a run here.")
    st.stop()
last = queries.last_metrics(store, runs["id"].tolist())
table = R.results_table(runs, last)
names = sorted(set(last["name"])) if len(last) else []
base = ["id", "kind", "arm", "seed", "status"]
st.dataframe(table[base + R.headline(names)], hide_index=True, width="stretch",
             column_config={n: st.column_config.NumberColumn(n, format="%.4f") for n in R.headline(names)})
with st.expander("Every metric's last value"):
    st.dataframe(table, hide_index=True, width="stretch")
plain = [n for n in names if not n.endswith(R.SUFFIXES)]
if plain:
    c1, c2 = st.columns(2)
    with c1:
        metric = st.selectbox("Compare arms on", plain, key="runs-metric",
                              index=plain.index(R.default_metric(plain)) if R.default_metric(plain) in plain else 0)
        cmp = R.compare(table, metric)
        st.plotly_chart(R.compare_figure(cmp, metric), width="stretch")
        st.caption("Bars: mean over the arm's seeds with a 95% t-interval (or the run's own logged interval).")
    with c2:
        first = R.default_curve(plain)
        curve = st.selectbox("Training curves", plain, key="runs-curve", index=plain.index(first) if first in plain else 0)
        labels = {int(r["id"]): f"#{r['id']} {R.arm_of(r)}" for r in runs.to_dict("records")}
        st.plotly_chart(R.curves_figure(queries.metrics_for(store, runs["id"].tolist(), [curve]), labels, curve),
                        width="stretch")

st.subheader("Lineage")
pick = st.selectbox("Run", runs["id"].tolist()[::-1], key="runs-lineage",
                    format_func=lambda i: f"#{i} {R.arm_of(runs[runs['id'] == i].iloc[0].to_dict())}")
row = runs[runs["id"] == pick].iloc[0].to_dict()
c1, c2 = st.columns([3, 2])
with c1:
    st.graphviz_chart(R.lineage_dot(store, int(pick)), width="stretch")
with c2:
    st.markdown("**Inputs**")
    st.dataframe(row["inputs"] or [], hide_index=True, width="stretch")
    st.markdown("**Config**")
    st.json(row["config"], expanded=False)
    if row["artifacts"]:
        st.markdown("**Artifacts**")
        st.json(row["artifacts"], expanded=False)
    if row.get("error"):
        st.error(row["error"])
