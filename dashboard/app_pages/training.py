"""Training: launch runs in their own process, watch their curves live, compare runs, choose the active model."""

import os

import streamlit as st

from dashboard import training_charts
from dashboard.settings import data_dir
from model.active import active_model, model_choices, set_active_model
from model.launch import start_training, stop_training
from model.network import SIZES
from model.runs import config_differences, final_metrics, list_runs, run_metrics
from model.train import TrainOptions
from pipeline import coverage
from pipeline.errors import Mp3MidiError

REFRESH_S = 3.0
RUN_COLUMNS = ["name", "status", "step", "steps", "best_onset_f1", "best_step", "device", "parameters", "datasets",
               "started_at", "finished_at"]

st.title("Training")

datasets = coverage.list_datasets(data_dir())
ready = list(datasets.loc[datasets["done"] > 0, "name"])
defaults = TrainOptions(datasets=[], run="")
with st.expander("Launch a run", expanded=not ready or list_runs(data_dir()).empty):
    if not ready:
        st.info("No dataset with finished items yet: make one on the Generate page first.")
    with st.form("train"):
        left, middle, right = st.columns(3)
        run = left.text_input("Run name", value="run-1", help="1-48 lower-case letters, digits, '-' or '_'")
        chosen = left.multiselect("Datasets", ready, default=ready[-1:])
        steps = middle.number_input("Steps", min_value=1, value=defaults.steps, step=100)
        batch = middle.number_input("Batch size", min_value=1, value=defaults.batch_size)
        lr = middle.number_input("Learning rate", min_value=1e-5, max_value=1.0, value=defaults.lr, format="%.4f")
        size = right.selectbox("Model size", list(SIZES), index=list(SIZES).index(defaults.size))
        seed = right.number_input("Seed", min_value=0, value=defaults.seed)
        device = right.selectbox("Device", ["auto", "cpu", "cuda"])
        every = right.number_input("Evaluate every (steps)", min_value=1, value=min(defaults.eval_every, 100))
        submitted = st.form_submit_button("Start training", type="primary", disabled=not ready)
    if submitted:
        options = TrainOptions(datasets=chosen, run=run.strip(), steps=int(steps), batch_size=int(batch), lr=float(lr),
                               size=size, seed=int(seed), device=device, eval_every=int(every),
                               data_dir=str(data_dir()), threads=os.cpu_count())
        try:
            launched = start_training(options)
        except Mp3MidiError as exc:
            st.error(f"Not started: {exc}")
        else:
            st.success(f"Started run **{options.run}** (process {launched.pid}); it appears below once its data "
                       "is loaded.")


@st.fragment(run_every=REFRESH_S)
def live_runs() -> None:
    runs = list_runs(data_dir())
    if runs.empty:
        st.info("No training runs yet. Launch one above, or from a terminal: "
                "`.venv/bin/python -m model train --dataset demo --run first --steps 200`")
        return
    st.subheader("Runs")
    st.dataframe(runs[RUN_COLUMNS], hide_index=True, width="stretch",
                 column_config={"best_onset_f1": st.column_config.NumberColumn("best onset F1", format="%.3f")})
    running = list(runs.loc[runs["status"] == "running", "name"])
    for name in running:
        metrics = run_metrics(data_dir(), [name])
        st.markdown(f"**{name}** is training")
        if metrics.empty:
            st.caption("Waiting for its first evaluation…")
        else:
            left, right = st.columns(2)
            left.plotly_chart(training_charts.curves(metrics, training_charts.LOSSES, title="loss"),
                              key=f"live-loss-{name}")
            right.plotly_chart(training_charts.curves(metrics, training_charts.SCORES, title="validation F1"),
                               key=f"live-f1-{name}")
        if st.button(f"Stop {name}", key=f"stop-{name}"):
            stop_training(data_dir(), name)
            st.toast(f"Stopping {name}; it saves its latest state first.")


live_runs()

runs = list_runs(data_dir())
if not runs.empty:
    st.subheader("Compare runs")
    names = st.multiselect("Runs", list(runs["name"]), default=list(runs["name"])[-3:])
    if names:
        metrics = run_metrics(data_dir(), names)
        if metrics.empty:
            st.caption("These runs have no evaluations yet.")
        else:
            left, right = st.columns(2)
            left.plotly_chart(training_charts.curves(metrics, training_charts.LOSSES, title="loss"), key="cmp-loss")
            right.plotly_chart(training_charts.curves(metrics, training_charts.SCORES, title="validation F1"),
                               key="cmp-f1")
            st.markdown("**Final metrics**")
            st.dataframe(final_metrics(data_dir(), names), hide_index=True, width="stretch")
        st.markdown("**Settings that differ**")
        differences = config_differences(data_dir(), names)
        if differences.empty:
            st.caption("The chosen runs share every setting.")
        else:
            st.dataframe(differences, hide_index=True, width="stretch")

st.subheader("Active model")
current = active_model(data_dir())
st.write(f"The Transcribe page uses **{current.label}** unless you pick another there.")
choices = model_choices(data_dir())
runs_with_best = [choice for choice in choices if choice.run is not None]
if runs_with_best:
    pick = st.selectbox("Make a run's best checkpoint the active model", runs_with_best,
                        format_func=lambda choice: choice.label)
    left, right = st.columns(2)
    if left.button("Make active", type="primary"):
        try:
            current = set_active_model(data_dir(), pick.run)
            st.success(f"Active model: {current.label}")
        except Mp3MidiError as exc:
            st.error(str(exc))
    if current.run is not None and right.button("Back to the committed default"):
        set_active_model(data_dir(), None)
        st.success("Active model: the committed default")
else:
    st.caption("When a run has a best checkpoint you can make it the active model here.")
