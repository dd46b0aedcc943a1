"""Score: build negatives and compute SEAM as worker jobs; live progress with ETA, cancel, logs."""

import streamlit as st

from app import forms, ui
from db import queries
from jobs import enqueue_job
from seam.errors import SeamError
from seam.score.config import DTYPES, ScoreConfig
from seam.score.formula import AGGREGATES, WEIGHTINGS

store = ui.get_store()
st.title("Score")
st.caption("Choose a PM, an RM, an RL set and the negative variants; the worker builds negatives and scores every "
           "(instruction, negative) pair. SEAM per instruction and variant is the sum (or mean) of "
           "log-likelihood x RM misjudgement over its negatives: lower is worse.")

datasets, models = store.datasets(), store.models()
if datasets.empty:
    ui.no_data("Import an RL set on the Data page first.")
ds_names = datasets.set_index("id")["name"].to_dict()

tab_score, tab_neg = st.tabs(["Compute SEAM", "Build negatives"])

with tab_neg:
    try:
        from seam.negatives import BUILDERS
    except Exception as exc:  # noqa: BLE001 - the builders are optional for the page
        BUILDERS = {}
        st.warning(f"The negative builders cannot be imported in this install ({type(exc).__name__}: {exc}).")
    c1, c2 = st.columns(2)
    ds = c1.selectbox("Dataset", list(ds_names), format_func=lambda i: f"#{i} {ds_names[i]}", key="neg-ds")
    builder = c2.selectbox("Builder (variant)", list(BUILDERS) or ["contrast", "llm", "adv"], key="neg-builder",
                           help="contrast: golden answers of similar instructions; llm: an LLM writes worse answers; "
                                "adv: adversarial edits that raise the RM's score")
    payload = {"dataset_id": int(ds), "builder": builder, "replace": False}
    if builder == "adv":
        rms = models[models["role"] == "rm"]
        if rms.empty:
            st.warning("adv attacks a reward model: register an RM on the Models page first.")
        else:
            payload["rm_model_id"] = int(st.selectbox("Reward model to attack", rms["id"].tolist(), key="neg-rm",
                                                      format_func=lambda i: ui.model_label(rms[rms["id"] == i].iloc[0])))
    if builder in BUILDERS:
        with st.expander(f"{builder} settings", expanded=True):
            payload["config"] = forms.dataclass_form(BUILDERS[builder].Config, key=f"neg-{builder}",
                                                     skip=("rm", "rm_adapter", "allow_pickle"))
    payload["replace"] = st.checkbox("Replace this variant's negatives if already built", key="neg-replace")
    counts = queries.negative_counts(store, int(ds))
    if len(counts):
        st.caption("Stored: " + ", ".join(f"{r.variant} {r.negatives:,} ({r.instructions:,} instructions)"
                                          for r in counts.itertuples()))
    if not ui.has_handler("negatives"):
        ui.missing_handler_note("negatives", "negatives cannot be built from the dashboard yet; import a negatives "
                                "file on the Data page, or run `seam negatives ...` and import its output")
    elif st.button("Build negatives", type="primary", key="neg-go"):
        _, error = (forms.checked(BUILDERS[builder].Config, payload.get("config"), where=f"{builder} settings")
                    if builder in BUILDERS else (None, None))  # checked here, not in the job's log
        if error:
            st.error(error)
        else:
            st.toast(f"negatives job {enqueue_job(store, 'negatives', payload)} queued")

with tab_score:
    pms, rms = models[models["role"] == "pm"], models[models["role"] == "rm"]
    if pms.empty or rms.empty:
        st.info("Register a PM and an RM on the Models page to compute SEAM.")
    else:
        c1, c2, c3 = st.columns(3)
        ds = c1.selectbox("Dataset", list(ds_names), format_func=lambda i: f"#{i} {ds_names[i]}", key="score-ds")
        pm = c2.selectbox("Policy model (PM)", pms["id"].tolist(), key="score-pm",
                          format_func=lambda i: ui.model_label(pms[pms["id"] == i].iloc[0]))
        rm = c3.selectbox("Reward model (RM)", rms["id"].tolist(), key="score-rm",
                          format_func=lambda i: ui.model_label(rms[rms["id"] == i].iloc[0]))
        counts = queries.negative_counts(store, int(ds))
        available = [v for v in counts["variant"].tolist() if v != queries.POLICY_VARIANT]
        if not available:
            st.warning("This dataset has no negatives yet: build them (Build negatives tab) or import a file (Data page).")
        variants = st.multiselect("Variants", available, default=available, key="score-variants",
                                  help="each variant's negatives give one SEAM per instruction")
        helps, defaults = ScoreConfig.field_help(), ScoreConfig.defaults()
        with st.expander("Settings", expanded=False):
            s1, s2, s3, s4 = st.columns(4)
            pm_template = pms[pms["id"] == pm].iloc[0]["template"] or defaults["template"]
            values = {
                "template": s1.text_input("Template", value=pm_template, key="score-template", help=helps["template"]),
                "weighting": s2.radio("Weighting", WEIGHTINGS, key="score-weighting", help=helps["weighting"]),
                "aggregate": s3.radio("Aggregate", AGGREGATES, key="score-aggregate", help=helps["aggregate"]),
                "device": s4.selectbox("Device", ("auto", "cpu", "cuda"), key="score-device", help=helps["device"]),
            }
            t1, t2, t3, t4, t5 = st.columns(5)
            values["max_prompt_tokens"] = t1.number_input("Max prompt tokens (0 = none)", 0, value=0, key="score-maxp",
                                                          help=helps["max_prompt_tokens"]) or None
            values["max_response_tokens"] = t2.number_input("Max response tokens (0 = none)", 0, value=0,
                                                            key="score-maxr", help=helps["max_response_tokens"]) or None
            values["batch_tokens"] = t3.number_input("Batch tokens", 1, value=defaults["batch_tokens"], step=1024,
                                                     key="score-bt", help=helps["batch_tokens"])
            values["dtype"] = t4.selectbox("dtype", DTYPES, key="score-dtype", help=helps["dtype"])
            values["chunk_instructions"] = t5.number_input("Chunk (instructions)", 1, value=defaults["chunk_instructions"],
                                                           key="score-chunk", help=helps["chunk_instructions"])
        name = st.text_input("Run name (optional)", key="score-name")
        if st.button("Compute SEAM", type="primary", disabled=not variants, key="score-go"):
            try:  # checked here, so a bad value is an error at the button, not in the job's log
                cfg = ScoreConfig.from_dict({**values, "variants": variants}, where="Score settings")
            except SeamError as exc:
                st.error(str(exc))
            else:
                settings = {k: v for k, v in cfg.to_dict().items() if k != "variants"}  # the run row holds the variants
                run = store.create_score_run(int(ds), variants, settings, pm_model_id=int(pm), rm_model_id=int(rm),
                                             name=name.strip() or None)
                job = enqueue_job(store, "score", {"score_run_id": run, "chunk_size": cfg.chunk_instructions})
                st.toast(f"score run #{run}: job {job} queued")


@st.fragment(run_every=ui.REFRESH_S)
def score_jobs() -> None:
    st.subheader("Jobs")
    level, message = ui.worker_state(store)
    if level != "ok":
        st.warning(message)
    ui.jobs_panel(store, ("score", "negatives"), key="score", limit=6)


score_jobs()
