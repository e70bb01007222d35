"""Training: launch runs in their own process, watch their curves live, compare runs, choose the active model."""

import os
from pathlib import Path

import streamlit as st

from dashboard import training_charts
from dashboard.settings import data_dir, shown_path
from dashboard.upload import MAX_UPLOAD_MB
from model.active import active_model, model_choices, set_active_model
from model.finetune import (FineTuneOptions, finetune_status, list_finetunes, report_table, start_fine_tune,
                            stop_fine_tune)
from model.network import SIZES
from model.runs import config_differences, final_metrics, list_runs, run_metrics
from model.train import TrainOptions
from pipeline import coverage
from pipeline.background import start_training, stop_training
from pipeline.errors import Mp3MidiError
from pipeline.soundfont_upload import MAX_SOUNDFONT_BYTES, add_soundfont
from pipeline.soundfonts import installed_soundfonts, user_soundfont_dir

REFRESH_S = 3.0
NEW_NETWORK = "a new network"
RECOMMENDED_BIN_SHIFT = 1  # what `make train-default` uses
FEW_HELD_OUT = 5  # held-out pieces under which a set's before/after scores are called noisy
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
        # Keyed by path: a label carries a training run's best score, which changes while the form is open
        starts = {"": NEW_NETWORK, **{str(choice.path): choice.label for choice in model_choices(data_dir())}}
        start = left.selectbox("Start from", list(starts), format_func=starts.get, key="train_start",
                               help="a new network of the size chosen, or a model's weights (its size, features and "
                                    "thresholds come along; the size chosen is ignored)")
        size = right.selectbox("Model size", list(SIZES), index=list(SIZES).index(defaults.size))
        seed = right.number_input("Seed", min_value=0, value=defaults.seed)
        device = right.selectbox("Device", ["auto", "cpu", "cuda"])
        every = right.number_input("Evaluate every (steps)", min_value=1, value=min(defaults.eval_every, 100))
        shift = middle.number_input("Feature shift (CQT bins)", min_value=0, max_value=2, value=RECOMMENDED_BIN_SHIFT,
                                    help="shift each training crop's features by up to this many bins (33 cents "
                                         "each) with the keys unchanged, so a note sung a little off is still its "
                                         "key; the committed model was trained with 1")
        submitted = st.form_submit_button("Start training", type="primary", disabled=not ready)
    if submitted:
        options = TrainOptions(datasets=chosen, run=run.strip(), steps=int(steps), batch_size=int(batch), lr=float(lr),
                               size=None if start else size, init_from=start or None, seed=int(seed),
                               device=device, eval_every=int(every), bin_shift=int(shift), data_dir=str(data_dir()),
                               threads=os.cpu_count())
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

st.subheader("Fine-tune to my sound")
st.caption("Teach the active model your instrument: pick or upload its soundfont, and optionally give your own "
           "recordings with aligned MIDI (a take recorded from a MIDI keyboard, an EWI or a DAW beside the audio). "
           "The built-in pieces are rendered with your sound and with the default one, the active model trains on "
           "yours from where it is, and both are scored before and after on pieces held out. Each stage runs in "
           "its own process with a time limit; leave or reload this page at will.")
with st.expander("Upload a soundfont", expanded=False):
    uploaded = st.file_uploader(f"An .sf2 or .sf3 file (up to {min(MAX_UPLOAD_MB, MAX_SOUNDFONT_BYTES // 2**20)} MB)",
                                type=["sf2", "sf3"], key="soundfont-upload", max_upload_size=MAX_UPLOAD_MB,
                                help="The dashboard's upload limit. A bigger bank: copy it into "
                                     f"{shown_path(user_soundfont_dir(data_dir()))} and pick it below.")
    if uploaded is not None and st.button("Check and keep it"):
        try:
            kept = add_soundfont(data_dir(), uploaded.name, uploaded.getvalue())
        except Mp3MidiError as exc:
            st.error(f"Not kept: {exc}")
        else:
            st.success(f"FluidSynth loaded it: kept as {shown_path(kept)}; pick it below.")
with st.form("finetune"):
    left, middle, right = st.columns(3)
    fonts = installed_soundfonts(data_dir())
    font = left.selectbox("Your sound (soundfont)", fonts, index=len(fonts) - 1,
                          format_func=lambda path: Path(path).name)
    tune_name = left.text_input("Name", value="my-sound", help="names the fine-tune, its dataset and its run")
    midi_folder = left.text_input("Pieces from a MIDI folder (optional)", placeholder="the built-in pieces",
                                  help="a folder of .mid files to render instead of the built-in pieces")
    pieces = middle.number_input("Pieces", min_value=1, value=FineTuneOptions.pieces, step=10,
                                 help="built-in pieces rendered with your sound (and with the default one)")
    clip_s = middle.number_input("Seconds per piece", min_value=1.0, max_value=120.0,
                                 value=FineTuneOptions.clip_seconds, step=5.0)
    tune_steps = middle.number_input("Fine-tune steps", min_value=1, value=FineTuneOptions.steps, step=50)
    limit_min = middle.number_input("Time limit per stage (minutes)", min_value=0.1,
                                    value=FineTuneOptions.stage_limit_s / 60, step=5.0)
    recordings = right.text_input("Your recordings to train on (optional folder)",
                                  help="audio files, each with a .mid of the same name beside it; the thresholds "
                                       "are recalibrated on them")
    judge = right.text_input("Your recordings to judge with (optional folder)",
                             help="audio + .mid pairs never trained on, scored before and after")
    tune = st.form_submit_button("Fine-tune the active model", type="primary")
if tune:
    options = FineTuneOptions(
        name=tune_name.strip(), soundfont=font, source=midi_folder.strip() or "builtin", pieces=int(pieces), clip_seconds=float(clip_s),
        steps=int(tune_steps), recordings=recordings.strip() or None, judge=judge.strip() or None,
        stage_limit_s=float(limit_min) * 60, threads=os.cpu_count(), workers=os.cpu_count() or 1,
        data_dir=str(data_dir()))
    try:
        launched = start_fine_tune(options)
    except Mp3MidiError as exc:
        st.error(f"Not started: {exc}")
    else:
        st.session_state["watched_finetune"] = options.name
        st.success(f"Started fine-tune **{options.name}** (process {launched.pid}).")

tunes = list(list_finetunes(data_dir())["name"])
watched_tune = st.session_state.get("watched_finetune")
if watched_tune and watched_tune not in tunes:
    tunes.insert(0, watched_tune)
if tunes:
    shown_tune = st.selectbox("Fine-tune", tunes, index=tunes.index(watched_tune) if watched_tune in tunes else 0)

    @st.fragment(run_every=REFRESH_S)
    def finetune_panel(name: str) -> None:
        state = finetune_status(data_dir(), name)
        if state is None:
            st.write("Starting…")
            return
        st.markdown(f"**{name}**: {state.status}" + (f", stage *{state.stage}*" if state.stage else ""))
        if state.status == "running":
            limit = f" of {state.stage_limit_s:.0f} s allowed" if state.stage_limit_s else ""
            st.progress(min(state.fraction or 0.0, 1.0), text=f"{state.detail} ({state.stage_elapsed_s:.0f} s{limit})")
            if st.button("Stop the fine-tune", key=f"stop-tune-{name}"):
                stop_fine_tune(data_dir(), name)
                st.toast(f"Stopping {name}; what it made is kept.")
        if state.message:
            st.warning(state.message)
        if state.report is not None:
            st.dataframe(report_table(state.report), hide_index=True, width="stretch")
            few = [label for label, scores in state.report["sets"].items() if scores["items"] < FEW_HELD_OUT]
            if few:
                st.caption(f"Few held-out pieces in {', '.join(few)}: one piece moves these scores a lot. More pieces "
                           "(60 or more) give a steadier verdict.")
            verdict = state.report["verdict"]
            if verdict["keep"]:
                st.success(f"Worth keeping: {verdict['reason']}.")
                if st.button("Make the fine-tuned model active", key=f"activate-{name}", type="primary"):
                    chosen = set_active_model(data_dir(), name)
                    st.success(f"Active model: {chosen.label}")
            else:
                st.info(f"Not made active: {verdict['reason']}. The model in use stays as it is.")
        elif state.status != "running" and state.log:
            st.code(state.log, language=None)

    finetune_panel(shown_tune)
