"""Transcribe: upload a recording, pick a model and decoding settings, see, hear and download the MIDI.

The network runs once per (file, model); every slider below only re-decodes its stored activations.
"""

from pathlib import Path

import pretty_midi
import streamlit as st

from dashboard.network_pass import DEFAULT_MIN_NOTE_MS, DecodeSettings, decoded, default_settings, pass_for_upload
from dashboard.note_export import midi_bytes, notes_csv, notes_frame, sheet_music
from dashboard.reference import MIDI_SUFFIXES, reference_notes
from dashboard.settings import data_dir
from dashboard.transcription_view import beats_caption, transcription_figure
from dashboard.upload import AUDIO_SUFFIXES, MAX_UPLOAD_MB, audio_mime, upload_help
from model.active import active_model, model_choices
from model.beats import DEFAULT_TEMPO_BPM, TEMPO_RANGE_BPM
from model.pitch_bends import midi_with_bends
from model.reference_match import compare_to_reference
from model.thresholds import BOUNDS as THRESHOLD_RANGE
from model.transcribe import DEFAULT_PROGRAM, QUANTIZE_GRIDS
from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.playback import PROGRAMS, render_midi, render_notes

MIN_NOTE_RANGE_MS = (10, 500)

st.title("Transcribe")
st.write("Upload a recording of any instrument and get back a MIDI file: see the notes on the spectrogram, "
         "hear them played back, and download them.")

folder = data_dir()
choices = model_choices(folder)
active = active_model(folder)
top_left, top_right = st.columns([3, 2])
uploaded = top_left.file_uploader("Recording", type=list(AUDIO_SUFFIXES), help=upload_help(),
                                  max_upload_size=MAX_UPLOAD_MB)
reference_upload = top_left.file_uploader(
    "Reference MIDI (optional)", type=list(MIDI_SUFFIXES), key="reference_midi",
    help="The notes the recording really holds (e.g. the MIDI it was played from): the transcription is scored "
         "against them and its missed and extra notes are marked on the spectrogram.")
choice = top_right.selectbox("Model", choices, format_func=lambda c: c.label,
                             index=choices.index(active) if active in choices else 0,
                             help="The active model is chosen on the Training page.")
try:
    defaults = default_settings(choice.path)
except Mp3MidiError as exc:
    st.error(f"This model cannot be used: {exc}")
    st.stop()

model_key = str(choice.path)
onset_col, frame_col, length_col = st.columns(3)
onset = onset_col.slider("Onset threshold", *THRESHOLD_RANGE, defaults.onset_threshold, 0.01,
                         key=f"onset:{model_key}", help="Lower finds more note starts (and more false ones). "
                         "The default is the value calibrated for this model.")
frame = frame_col.slider("Frame threshold", *THRESHOLD_RANGE, defaults.frame_threshold, 0.01,
                         key=f"frame:{model_key}", help="Lower lets notes sustain longer.")
min_note_ms = length_col.slider("Minimum note length (ms)", *MIN_NOTE_RANGE_MS, int(DEFAULT_MIN_NOTE_MS), 10,
                                help="Shorter notes are dropped.")
tempo_col, grid_col, program_col = st.columns(3)
tempo_mode = tempo_col.radio("Tempo", ["as heard", "fixed"], horizontal=True,
                             help="As heard: a tempo map that follows the beats (one tempo when they are not "
                                  "steady). Written into the MIDI file and used for quantizing and the sheet music.")
tempo_bpm = None
if tempo_mode == "fixed":
    tempo_bpm = tempo_col.number_input("Beats per minute", *TEMPO_RANGE_BPM, DEFAULT_TEMPO_BPM, 1.0)
quantize = grid_col.selectbox("Quantize", ["none", *QUANTIZE_GRIDS],
                              help="Snap note starts and ends to this subdivision of the beats (t: triplets).")
program = program_col.selectbox("Output instrument", PROGRAMS, index=DEFAULT_PROGRAM,
                                format_func=lambda p: f"{p}: {pretty_midi.program_to_instrument_name(p)}",
                                help="The General MIDI program of the MIDI track and of the playback.")
pitch_bends = program_col.toggle("Pitch bends", help="Write each note's pitch contour as it was heard (vibrato, "
                                 "bends) as pitch-wheel events, one MIDI channel per sounding note; the playback "
                                 "below uses them too.")
mono = st.checkbox("One note at a time", key="mono",
                   help="For a voice, a wind instrument or a bass line: never two notes at once.")

if uploaded is None:
    st.info(f"Upload a recording to transcribe it: {upload_help()} The model chosen above listens to it once; "
            "the sliders can then be moved without waiting for the network again.")
    st.stop()

settings = DecodeSettings(onset_threshold=onset, frame_threshold=frame, min_note_ms=min_note_ms, program=program,
                          tempo_bpm=tempo_bpm, quantize=quantize, mono=mono)
progress = st.progress(0.0, text=f"Transcribing {uploaded.name} ...")
try:
    network = pass_for_upload(st.session_state, uploaded.name, uploaded.getvalue(), checkpoint=choice.path,
                              on_progress=lambda done: progress.progress(
                                  done, text=f"Transcribing {uploaded.name}: {done:.0%} of the recording"))
    result = decoded(network, settings)
except Mp3MidiError as exc:
    st.error(f"Cannot transcribe this upload: {exc}")
    st.stop()
finally:
    progress.empty()

for warning in result.warnings:
    st.warning(warning)
notes_metric, tempo_metric, length_metric = st.columns(3)
notes_metric.metric("Notes", len(result.notes))
tempo_metric.metric("Tempo (BPM)", f"{result.tempo_bpm:.1f}")
length_metric.metric("Length (s)", f"{result.duration_s:.1f}")

comparison = None
if reference_upload is not None:
    try:
        reference = reference_notes(reference_upload.name, reference_upload.getvalue())
    except Mp3MidiError as exc:
        st.error(f"Cannot score against this reference: {exc}")
    else:
        comparison = compare_to_reference(reference, result.notes, duration_s=result.duration_s)
        scores = comparison.scores
        st.markdown(f"**Against {reference_upload.name}** ({scores.n_reference} notes; mir_eval, onsets within 50 ms)")
        onset_score, offset_score, frame_score, counts = st.columns(4)
        onset_score.metric("Onset F1", f"{scores.onset_f1:.3f}",
                           help=f"precision {scores.onset_precision:.3f}, recall {scores.onset_recall:.3f}")
        offset_score.metric("Note-with-offset F1", f"{scores.offset_f1:.3f}",
                            help=f"precision {scores.offset_precision:.3f}, recall {scores.offset_recall:.3f}")
        frame_score.metric("Frame F1", f"{scores.frame_f1:.3f}",
                           help=f"precision {scores.frame_precision:.3f}, recall {scores.frame_recall:.3f}")
        counts.metric("Missed / extra notes", f"{len(comparison.missed)} / {len(comparison.extra)}",
                      help="Marked on the spectrogram: missed notes dotted red, extra notes in orange.")

st.plotly_chart(transcription_figure(network.image, result.notes, duration_s=result.duration_s,
                                     missed=comparison.missed if comparison else None,
                                     extra=comparison.extra if comparison else None,
                                     beats_s=result.beats.beats_s),
                config={"scrollZoom": True, "displaylogo": False})
st.caption(beats_caption(result.beats))
midi_data = (midi_with_bends(result.midi, result.notes, network.deviations) if pitch_bends
             else midi_bytes(result.midi))

original_col, playback_col = st.columns(2)
original_col.markdown("**Original**")
original_col.audio(uploaded.getvalue(), format=audio_mime(uploaded.name))
playback_col.markdown("**Transcription, played by FluidSynth**" + (" with its pitch bends" if pitch_bends else ""))
render_back = st.cache_data(max_entries=2, show_spinner="Rendering the MIDI ...")(render_notes)
render_file = st.cache_data(max_entries=2, show_spinner="Rendering the MIDI ...")(render_midi)
try:
    playback_col.audio(render_file(midi_data, duration_s=result.duration_s) if pitch_bends
                       else render_back(tuple(result.notes), duration_s=result.duration_s, program=program),
                       sample_rate=SAMPLE_RATE)
except Mp3MidiError as exc:
    playback_col.info(f"Nothing to play back: {exc}")

stem = Path(uploaded.name).stem
# A download changes nothing on the page, so it does not rerun it (a rerun would also swap the buttons' files
# under a second click made while it runs).
midi_col, csv_col, score_col = st.columns(3)
midi_col.download_button("Download .mid", midi_data, file_name=f"{stem}.mid", mime="audio/midi",
                         on_click="ignore", icon=":material/download:")
csv_col.download_button("Download .csv", notes_csv(result.notes), file_name=f"{stem}.csv", mime="text/csv",
                        on_click="ignore", icon=":material/download:")
score_col.download_button("Download .musicxml",  # made when clicked: music21 takes a while on long pieces
                          lambda: sheet_music(result.notes, result.beats, grid=quantize, title=stem),
                          file_name=f"{stem}.musicxml", mime="application/vnd.recordare.musicxml+xml",
                          on_click="ignore", icon=":material/download:",
                          help="Sheet music for notation programs (MuseScore ...): "
                          "on the quantization grid (sixteenths when none), key and time signature estimated.")
st.dataframe(notes_frame(result.notes), hide_index=True,
             column_config={column: st.column_config.NumberColumn(format="%.3f")
                            for column in ("start_s", "end_s", "duration_s")})
