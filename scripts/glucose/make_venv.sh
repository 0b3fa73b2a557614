#!/usr/bin/env bash
# Create the virtual environment used by scripts/glucose/make_dataset.py:
# the UVA/Padova simulator as packaged in simglucose 0.2.11.
#
#   bash scripts/glucose/make_venv.sh [VENV_DIR]      # default: .venv-simglucose
#   VENV_DIR/bin/python scripts/glucose/make_dataset.py
#
# Notes
# * simglucose imports pkg_resources, hence setuptools<82.
# * simglucose 0.2.11 requires gym==0.9.4, which has no wheel and is built
#   from its sdist.  PIP_CONSTRAINT also applies to pip's isolated build
#   environment, so that build uses the pinned setuptools/wheel below too.
# * Every other package is pinned to the version `pip freeze` showed in the
#   environment that produced src/metalearn/data/glucose_uvapadova.csv.gz
#   (Python 3.11.7, Linux x86_64).  Key packages: simglucose 0.2.11,
#   gym 0.9.4, gymnasium 0.29.1, numpy 2.4.6, pandas 3.1.1, scipy 1.17.1
#   (plus setuptools 65.5.0, wheel 0.48.0).
set -euo pipefail

VENV="${1:-.venv-simglucose}"
PYTHON="${PYTHON:-python3}"

CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
cat >"$CONSTRAINTS" <<'EOF'
setuptools==65.5.0
wheel==0.48.0
simglucose==0.2.11
gym==0.9.4
gymnasium==0.29.1
numpy==2.4.6
pandas==3.1.1
scipy==1.17.1
certifi==2026.10.19.post1
charset-normalizer==3.5.3
cloudpickle==3.1.3
contourpy==1.3.3
cycler==0.12.1
dill==0.4.1
Farama-Notifications==0.0.6
fonttools==4.68.0
idna==3.20
kiwisolver==1.5.1
matplotlib==3.11.2
multiprocess==0.70.19
packaging==26.4
pathos==0.3.5
pillow==13.0.0
pox==0.3.7
ppft==1.7.8
pyglet==2.1.19
pyparsing==3.3.3
python-dateutil==4.0.0
requests==2.34.2
six==1.17.0
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
EOF

"$PYTHON" -m venv "$VENV"
export PIP_CONSTRAINT="$CONSTRAINTS"
"$VENV/bin/pip" install "setuptools<82" wheel
"$VENV/bin/pip" install simglucose==0.2.11
"$VENV/bin/pip" freeze | grep -iE '^(simglucose|gym|gymnasium|numpy|pandas|scipy)=='
