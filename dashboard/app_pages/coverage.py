"""Dataset coverage: what one dataset holds (keys, instruments, polyphony, lengths, velocities), its failures and
timings, and a browser that shows one item's spectrogram with its labels and plays its MP3."""

from pathlib import Path

import streamlit as st

from dashboard import coverage_charts as charts
from dashboard.settings import data_dir
from pipeline import coverage
from pipeline.constants import N_KEYS
from pipeline.errors import Mp3MidiError

BROWSE_LIMIT = 500
ANY_FAMILY = "any family"

st.title("Dataset coverage")
datasets = coverage.list_datasets(data_dir())
if datasets.empty:
    st.info("There is no dataset yet. Make one on the **Generate** page, or from a terminal:\n\n"
            "`.venv/bin/python -m pipeline generate --name demo --limit 50`")
    st.page_link("app_pages/generate.py", label="Go to Generate", icon=":material/factory:")
    st.stop()

names = datasets["name"].tolist()
asked = st.query_params.get("dataset")
if "coverage_dataset" not in st.session_state:
    if asked is not None and asked not in names:
        st.warning(f"There is no dataset named {asked!r}; showing {names[-1]!r} instead.")
    st.session_state.coverage_dataset = asked if asked in names else names[-1]
name = st.selectbox("Dataset", names, key="coverage_dataset")
st.query_params["dataset"] = name

totals = coverage.totals(data_dir(), name)
cells = st.columns(8)
for cell, (label, value) in zip(cells, [
        ("Items", f"{totals.items:,}"), ("Done", f"{totals.done:,}"), ("Failed", f"{totals.failed:,}"),
        ("Pending", f"{totals.pending:,}"), ("Hours of audio", f"{totals.hours:.2f}"), ("Notes", f"{totals.notes:,}"),
        ("Mixes", f"{totals.mixes:,}"), ("MP3 (MB)", f"{totals.mp3_mb:.1f}")]):
    cell.metric(label, value)

coverage_tab, items_tab, failures_tab = st.tabs(["Coverage", "Item browser", "Failures and timing"])

families: list[str] = []
with coverage_tab:
    if totals.done == 0:
        st.info(f"Dataset {name!r} has no finished items yet, so there is nothing to chart. Run its generation "
                "(again) on the Generate page to make them.")
    else:
        matrix = coverage.pitch_family_matrix(data_dir(), name)
        families = list(matrix.index)
        silent = coverage.keys_without_notes(matrix)
        if silent:
            st.warning(f"{len(silent)} of the {N_KEYS} keys have no notes: "
                       + ", ".join(charts.note_name(pitch) for pitch in silent))
        else:
            st.success(f"Every one of the {N_KEYS} keys has notes.")
        outside = totals.notes - int(matrix.to_numpy().sum())
        if outside:
            st.caption(f"{outside:,} notes lie outside the {N_KEYS} keys; the labels leave them out.")
        st.plotly_chart(charts.notes_per_key(matrix))
        st.plotly_chart(charts.pitch_family_heatmap(matrix))
        st.plotly_chart(charts.hours_per_program(coverage.hours_per_family(data_dir(), name)))
        st.plotly_chart(charts.polyphony(coverage.polyphony_histogram(data_dir(), name)))
        left, right = st.columns(2)
        left.plotly_chart(charts.note_lengths(coverage.duration_histogram(data_dir(), name)))
        right.plotly_chart(charts.velocities(coverage.velocity_histogram(data_dir(), name)))
        st.subheader("Renderers")
        st.table(coverage.renderer_coverage(data_dir(), name).round({"hours": 3}).set_index("renderer"))
        expression = coverage.expression_coverage(data_dir(), name)
        if expression.empty:
            st.caption("Every item was played as written and recorded dry: no performances or recording chains "
                       "(generate with --performance-probability and --chain-probability for them).")
        else:
            st.plotly_chart(charts.expression_shares(expression))


@st.fragment
def item_browser(dataset: str, families: list[str]) -> None:
    """Pick a finished item, see its preview with its labels, hear its MP3. Reruns alone when used."""
    left, right = st.columns(2)
    family = left.selectbox("Family", [ANY_FAMILY, *families], key="coverage_family")
    contains = right.text_input("Source contains", key="coverage_contains").strip()
    found = coverage.done_items(data_dir(), dataset, family=None if family == ANY_FAMILY else family,
                                contains=contains or None, limit=BROWSE_LIMIT)
    if found.empty:
        st.warning("No finished item matches these filters." if family != ANY_FAMILY or contains
                   else f"Dataset {dataset!r} has no finished items yet.")
        return
    if len(found) == BROWSE_LIMIT:
        st.caption(f"Showing the first {BROWSE_LIMIT} matches; narrow the filters to reach the others.")
    labels = {row.item_id: f"#{row.ordinal} · {row.source} · {'mix' if row.is_mix else 'solo'} of "
                           f"{', '.join(row.families)} · {row.duration_s:.1f} s" for row in found.itertuples()}
    item_id = st.selectbox("Item", list(labels), format_func=labels.get, key="coverage_item")
    try:
        view = coverage.item_view(data_dir(), dataset, item_id)
    except Mp3MidiError as exc:
        st.error(str(exc))
        return
    st.markdown(f"**Source:** {view.source_kind} `{view.source}`  \n"
                f"**Instruments:** {'mix' if view.is_mix else 'solo'}: "
                f"{', '.join(charts.instrument_name(p) for p in view.programs)} ({', '.join(view.families)})  \n"
                f"**Duration:** {view.duration_s:.1f} s · **Notes:** {view.n_notes:,} · "
                f"**Soundfont:** {Path(view.soundfont).name}")
    st.caption(charts.expression_summary(view.performance, view.chain))
    st.plotly_chart(charts.item_preview(view.preview_path, view.notes, span_s=view.preview_span_s))
    st.audio(str(view.audio_path), format="audio/mpeg")


with items_tab:
    item_browser(name, families)

with failures_tab:
    failed = coverage.failures(data_dir(), name)
    if failed.empty:
        st.success("No item failed.")
    else:
        st.subheader("Failures by reason")
        st.dataframe(failed, hide_index=True)
    if totals.done:
        stages = coverage.stage_seconds(data_dir(), name)
        st.plotly_chart(charts.stage_times(stages))
