"""Generate: the factory's options in a form; the job runs in its own process and this page watches the catalog."""

import os
from pathlib import Path

import streamlit as st

from dashboard.settings import data_dir, shown_path
from pipeline import coverage
from pipeline.background import (cancel_generation, generation_log, job_progress, resume_options,
                                 start_generation)
from pipeline.errors import Mp3MidiError
from pipeline.instruments import DEFAULT_FAMILIES, FAMILIES
from pipeline.jobs import DEFAULT_BUILTIN_LIMIT, DEFAULT_CLIP_SECONDS, DEFAULT_MIX_PROBABILITY, GenerateOptions
from pipeline.soundfonts import installed_soundfonts, user_soundfont_dir
from pipeline.sources import BUILTIN

REFRESH_S = 2.0
CORES = os.cpu_count() or 1

st.title("Generate a dataset")
st.caption("MIDI → FluidSynth → MP3 → spectrogram and labels, recorded in the catalog. The job runs in its own "
           "process: leave or reload this page at will. Starting a dataset again resumes it.")

soundfonts = installed_soundfonts(data_dir())
with st.form("generate"):
    left, right = st.columns(2)
    name = left.text_input("Dataset name", value="demo", help="1-48 lower-case letters, digits, '-' or '_'")
    source_kind = left.radio("Source", ["Built-in (corpus + procedural)", "A folder of MIDI files"], horizontal=True)
    folder = left.text_input("MIDI folder (searched recursively)", placeholder="/path/to/midi")
    limit = left.number_input("Pieces (at most; 0: all)", min_value=0, value=DEFAULT_BUILTIN_LIMIT, step=10,
                              help=f"0 takes every file of a folder (the built-in source: {DEFAULT_BUILTIN_LIMIT}).")
    clip = left.number_input("Clip length, seconds (0: whole pieces)", min_value=0.0,
                             value=DEFAULT_CLIP_SECONDS, step=5.0)
    chosen_fonts = right.multiselect("Soundfonts (each item draws one)", soundfonts, default=soundfonts[:1],
                                     format_func=lambda path: Path(path).name,
                                     help=f"Add your own .sf2/.sf3 files to {shown_path(user_soundfont_dir(data_dir()))}")
    families = right.multiselect("Instrument families", FAMILIES, default=list(DEFAULT_FAMILIES))
    mix = right.slider("Share of multi-instrument mixes", 0.0, 1.0, DEFAULT_MIX_PROBABILITY, 0.05)
    workers = right.number_input("Worker processes", min_value=1, max_value=4 * CORES, value=CORES)
    seed = right.number_input("Seed", min_value=0, value=0)
    drums = right.checkbox("Render drum tracks into the audio (never labelled)")
    performed = right.slider("Share performed with expression", 0.0, 1.0, 0.0, 0.05,
                             help="vibrato, bends, slides, swells, humanized timing; the labels follow the sound")
    chained = right.slider("Share through a recording chain", 0.0, 1.0, 0.0, 0.05,
                           help="a room, a microphone, compression, noise and a bitrate drawn per item")
    synth = right.slider("Share played by procedural instruments", 0.0, 1.0, 0.0, 0.05,
                         help="additive, FM, plucked and breath instruments instead of a soundfont")
    voice = right.slider("Share sung by the procedural voice", 0.0, 1.0, 0.0, 0.05,
                         help="a source-filter singer; with the procedural instruments at most 1 in all")
    submitted = st.form_submit_button("Start", type="primary")

if submitted:
    options = GenerateOptions(
        name=name.strip(), source=BUILTIN if source_kind.startswith("Built-in") else folder.strip(),
        soundfonts=tuple(chosen_fonts), families=tuple(families), limit=int(limit) or None, clip_seconds=float(clip),
        workers=int(workers), seed=int(seed), data_dir=str(data_dir()), mix_probability=float(mix),
        render_drums=drums, performance_probability=float(performed), chain_probability=float(chained),
        synth_probability=float(synth), voice_probability=float(voice))
    try:
        launched = start_generation(options)
    except Mp3MidiError as exc:
        st.error(f"Not started: {exc}")
    else:
        st.session_state["watched_dataset"] = options.name
        st.success(f"Started generating **{options.name}** (process {launched.pid}).")

datasets = list(coverage.list_datasets(data_dir())["name"])
watched = st.session_state.get("watched_dataset")
if watched and watched not in datasets:  # just launched: its process has not registered it yet
    datasets.append(watched)
if not datasets:
    st.info("No dataset yet: fill in the form and press Start. 50 built-in pieces take about a minute.")
    st.stop()

dataset = st.selectbox("Watch dataset", datasets, index=datasets.index(watched) if watched in datasets else len(datasets) - 1)


@st.fragment(run_every=REFRESH_S)
def progress_panel(dataset: str) -> None:
    progress = job_progress(data_dir(), dataset)
    if progress is None:
        st.write("Starting the job…")
        log = generation_log(data_dir(), dataset)
        if log:
            st.code(log, language=None)
        return
    st.subheader(f"Job {progress.job_id}: {progress.status}")
    if progress.status == "planning":
        st.progress(0.0, text="Planning sources (converting corpus works the first time)…")
    else:
        st.progress(min(progress.fraction, 1.0), text=f"{progress.done + progress.failed} of {progress.total} items")
    done, failed, speed, eta = st.columns(4)
    done.metric("Done", f"{progress.done} / {progress.total or '?'}")
    failed.metric("Failed", progress.failed)
    speed.metric("Throughput", f"{progress.items_per_s:.2f} items/s", f"{progress.speed:.0f}x real time",
                 delta_color="off", delta_arrow="off")
    eta.metric("Time left", f"{progress.eta_s:.0f} s" if progress.eta_s is not None else "–")
    if progress.message:
        st.error(progress.message)
    if progress.active:
        if st.button("Cancel", key=f"cancel-{dataset}"):
            cancel_generation(data_dir(), dataset)
            st.toast(f"Stopping {dataset}; items made so far are kept.")
    elif progress.status in ("cancelled", "interrupted", "failed") or (progress.total and progress.fraction < 1.0):
        if st.button("Resume", key=f"resume-{dataset}"):
            try:
                start_generation(resume_options(data_dir(), dataset, workers=CORES))
            except Mp3MidiError as exc:
                st.error(f"Not resumed: {exc}")
    failures = coverage.failures(data_dir(), dataset)
    if not failures.empty:
        st.markdown("**Failures by reason**")
        st.dataframe(failures, hide_index=True, width="stretch")
    with st.expander("Job log"):
        st.code(progress.log or "(nothing yet)", language=None)


progress_panel(dataset)
