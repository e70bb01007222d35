# Two commands: `make run` (set up what is missing, then start the dashboard) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
APT_PACKAGES := libfluidsynth3
HOST ?= 127.0.0.1
PORT ?= 8501

# Training hears every Debian General MIDI bank of its own lineage: TimGM6mb ('default', inside pretty_midi), the
# FluidR3 family (FluidR3_GM and its mono .sf3) and an OPL3 FM chip emulation. Two banks stay out of training, but
# neither is a lineage of its own: MuseScore General Lite plays FluidR3's samples for about 69 of its 96 pitched
# programs, csound's sf_GMbank TimGM6mb's for about 70 (benchmarks/unseen_programs.py measures it). Timbres no
# training bank has are their programs that sound like no training program: the unseen-programs set below.
# (fluid-soundfont-gs's FluidR3_GS.sf2 holds only GS variation presets, no General MIDI bank 0: not used.)
TRAIN_SOUNDFONTS := default /usr/share/sounds/sf2/FluidR3_GM.sf2 /usr/share/sounds/sf3/FluidR3Mono_GM.sf3 \
  /usr/share/sounds/sf2/OPL-3_FM_128M.sf2
TRAIN_BANK_PACKAGES := fluid-soundfont-gm fluidr3mono-gm-soundfont opl3-soundfont
# Shares of training items played by procedural instruments and sung by the procedural voice (pipeline.renderers)
SYNTH_PROBABILITY ?= 0.2
VOICE_PROBABILITY ?= 0.1
# Shares played as performances (vibrato, slides, bends, pedal, moving dynamics) and recorded through a drawn chain
# (room, microphone, EQ, compressor, noise, bitrate): half each keeps the factory near 100x real time per core.
PERFORMANCE_PROBABILITY ?= 0.5
CHAIN_PROBABILITY ?= 0.5
TRAIN_RENDERING = --synth-probability $(SYNTH_PROBABILITY) --voice-probability $(VOICE_PROBABILITY) \
  --performance-probability $(PERFORMANCE_PROBABILITY) --chain-probability $(CHAIN_PROBABILITY)
UNSEEN_SOUNDFONT := /usr/share/sounds/sf3/MuseScore_General_Lite.sf3
CSOUND_SOUNDFONT := /usr/share/sounds/sf2/sf_GMbank.sf2
TRAIN_STEPS ?= 2400
TRAIN_LR ?= 0.002
# Empty: a new network. A checkpoint: a warm start from its weights (the committed default was made this way, see
# docs/MODEL_CARD.md: TRAIN_FROM=<the previous default> TRAIN_STEPS=1200 TRAIN_LR=0.001).
TRAIN_FROM ?=

.PHONY: setup system run test demo bench bench-training-data train-default finetune-measure clean-data

setup: system $(STAMP)

# Debian packages: installed with apt-get when missing (as root); otherwise say what to install and stop.
system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Missing system packages: $$missing. Install them (Debian/Ubuntu: sudo apt-get install $$missing;"; \
	    echo "elsewhere the FluidSynth 2 shared library), then re-run make."; exit 1; \
	  fi; \
	fi

# The pinned set first, then the project itself, editable and without dependencies: the `mp3-to-midi` command and
# imports of pipeline/model/dashboard from any folder (pyproject.toml).
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e . --no-deps  # quiet: setuptools warns that any editable install is one
	@touch $(STAMP)

run: setup
	$(PY) -m streamlit run dashboard/app.py --server.address $(HOST) --server.port $(PORT) --server.headless true \
	  --browser.gatherUsageStats false

test: setup
	@$(MAKE) --no-print-directory system APT_PACKAGES="$(APT_PACKAGES) chromium"  # the browser test's Chromium
	$(PY) -m pytest -q

demo: setup
	$(PY) -m pipeline generate --name demo --limit 50
	$(PY) -m pipeline stats --name demo

bench: setup
	$(PY) benchmarks/generate.py
	$(PY) benchmarks/transcribe.py

# The factory end to end as `make train-default` runs it: its banks and rendering shares.
bench-training-data: setup
	$(MAKE) system APT_PACKAGES="$(TRAIN_BANK_PACKAGES)"
	$(PY) benchmarks/generate.py --skip-stages --soundfont $(TRAIN_SOUNDFONTS) $(TRAIN_RENDERING)

# The committed default model: built-in data rendered with the training banks above, procedural instruments and a
# singing voice, trained with a fixed seed on the CPU, then scored on pieces it never saw, rendered with a soundfont
# it never heard as files (MuseScore General Lite, csound's bank), and on those banks' programs that sound like no
# training program (the timbres no training bank has).
train-default: setup
	$(MAKE) system APT_PACKAGES="$(TRAIN_BANK_PACKAGES) musescore-general-soundfont-small csound-soundfont"
	$(PY) -m pipeline generate --name builtin-train --limit 160 --seed 0 --soundfont $(TRAIN_SOUNDFONTS) \
	  $(TRAIN_RENDERING)
	$(PY) benchmarks/procedural_midi.py --out data/procedural-midi --count 360 --first-seed 100000
	$(PY) -m pipeline generate --name procedural-train --source data/procedural-midi --seed 0 \
	  --soundfont $(TRAIN_SOUNDFONTS) $(TRAIN_RENDERING)
	$(PY) -m model train --dataset builtin-train procedural-train --run default --steps $(TRAIN_STEPS) \
	  --batch-size 12 --eval-every 300 --seed 0 --threads 2 --bin-shift 1 --lr $(TRAIN_LR) \
	  $(if $(TRAIN_FROM),--init-from $(TRAIN_FROM))
	cp data/runs/default/best.pt model/checkpoints/default.pt
	$(PY) -m model calibrate --checkpoint model/checkpoints/default.pt --dataset builtin-train procedural-train
	$(PY) -m model evaluate --dataset builtin-train procedural-train --split test --json docs/eval-held-out.json
	$(PY) benchmarks/procedural_midi.py --out data/procedural-unseen --count 60 --first-seed 900000
	$(PY) -m pipeline generate --name unseen-procedural --source data/procedural-unseen --seed 1 --clip-seconds 20 \
	  --soundfont $(UNSEEN_SOUNDFONT)
	$(PY) -m pipeline generate --name unseen-builtin --limit 160 --seed 1 --clip-seconds 20 --soundfont $(UNSEEN_SOUNDFONT)
	$(PY) -m pipeline export --name unseen-procedural --split all --out data/eval/unseen-soundfont
	$(PY) -m pipeline export --name unseen-builtin --split test --out data/eval/unseen-soundfont
	$(PY) benchmarks/compare_basic_pitch.py --folder data/eval/unseen-soundfont --threads 2 \
	  --json docs/eval-unseen-soundfont.json
	$(PY) -m pipeline generate --name unseen-csound-procedural --source data/procedural-unseen --seed 1 \
	  --clip-seconds 20 --soundfont $(CSOUND_SOUNDFONT)
	$(PY) -m pipeline generate --name unseen-csound-builtin --limit 160 --seed 1 --clip-seconds 20 \
	  --soundfont $(CSOUND_SOUNDFONT)
	$(PY) -m pipeline export --name unseen-csound-procedural --split all --out data/eval/unseen-csound
	$(PY) -m pipeline export --name unseen-csound-builtin --split test --out data/eval/unseen-csound
	$(PY) benchmarks/compare_basic_pitch.py --folder data/eval/unseen-csound --threads 2 \
	  --json docs/eval-unseen-csound.json
	rm -rf data/eval/unseen-programs
	$(PY) benchmarks/unseen_programs.py --out data/eval/unseen-programs --bank $(CSOUND_SOUNDFONT) $(UNSEEN_SOUNDFONT) \
	  --training-bank $(TRAIN_SOUNDFONTS)
	$(PY) benchmarks/compare_basic_pitch.py --folder data/eval/unseen-programs --threads 2 \
	  --json docs/eval-unseen-programs.json

# The fine-tune measurement of docs/FINETUNE.md: the default model fine-tuned on an FM-synthesis bank it never heard
# (OPL3), then scored before and after on held-out pieces of that bank, of the default soundfont and of csound's.
finetune-measure: setup
	$(MAKE) system APT_PACKAGES="csound-soundfont musescore-general-soundfont-small"
	$(PY) benchmarks/procedural_midi.py --out data/procedural-ft --count 100 --first-seed 700000 --seconds 20
	$(PY) -m pipeline generate --name sound-csound --source data/procedural-ft --clip-seconds 15 --seed 5 \
	  --workers 1 --soundfont $(CSOUND_SOUNDFONT)
	$(PY) -m pipeline generate --name sound-default --source data/procedural-ft --clip-seconds 15 --seed 5 \
	  --workers 1 --soundfont default
	$(PY) -m pipeline generate --name sound-musescore --source data/procedural-ft --clip-seconds 15 --seed 5 \
	  --workers 1 --soundfont $(UNSEEN_SOUNDFONT)
	$(PY) -m model train --dataset sound-csound --run ft-csound --init-from default --steps 300 --lr 5e-4 \
	  --batch-size 8 --eval-every 100 --threads 1 --seed 0
	for set in sound-csound sound-default sound-musescore; do \
	  $(PY) -m model evaluate --dataset $$set --split test && \
	  $(PY) -m model evaluate --checkpoint data/runs/ft-csound/best.pt --dataset $$set --split test || exit 1; \
	done
