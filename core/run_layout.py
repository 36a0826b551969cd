"""Names of a run directory's files and folders (the map is in core/rundir.py's docstring); only core/ uses them.

Other modules ask RunDir for paths. The export folder's files are also the .mar's model-dir files, which
runtime/ (shipped alone, no project imports) names itself; tests/test_run_layout.py checks both agree.
"""
CONFIG = "config.yaml"
RUN_INFO = "run.json"
METRICS = "metrics.json"
PREPROCESS = "preprocess.json"       # the preprocessing spec training used (runtime.preprocessing)
CALIBRATION = "calibration.json"     # {"temperature": float}, written by evaluation, read by export
TRAIN_LOG = "train.log"
MODEL_CARD = "MODEL_CARD.md"
DATA_DIR = "data"
SPLITS = "data/splits.json"
LABELS = "data/labels.json"
BAD_RECORDS = "data/bad_records.json"
TABULAR_ROLES = "data/tabular_roles.json"  # which column plays which part (datamodule=tabular)
TOKENS_INFO = "data/tokens.json"           # the token data a language-model run read (datamodule=tokens)
TOKENIZER_DIR = "data/tokenizer"
TOKENIZER_FILE = "data/tokenizer/tokenizer.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
COMPLETE_MARKER = "COMPLETE"         # written last inside directory checkpoints (DeepSpeed / FSDP)
REPORT_DIR = "report"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
EVALUATION_ERROR = "evaluation_error.txt"
CV_SUMMARY_JSON = "cv_summary.json"
CV_SUMMARY_MD = "cv_summary.md"
DATA_CHECKS_DIR = "data_checks"
DATA_REPORT_JSON = "data_report.json"
DATA_REPORT_MD = "data_report.md"
EXPORT_DIR = "export"
EXPORT_JSON = "export.json"
ARCHIVES_DIR = "archives"
SCRIPTED_MODEL = "model.pt"
EXPORTED_PROGRAM = "model.pt2"
METADATA = "metadata.json"           # export/ and the .mar: provenance (run id, task, metrics, checkpoint)
INDEX_TO_NAME = "index_to_name.json"  # export/ and the .mar: class index -> label
EXPORT_TOKENIZER_DIR = "tokenizer"    # export/tokenizer (text runs): what the .mar carries
EXPORT_TOKENIZER_FILE = "tokenizer.json"  # export/tokenizer.json (language-model runs): what the .mar carries
HF_DIR = "hf"                          # export/hf: the Hugging Face folder of `export.py format=hf`
MONITORING_DIR = "monitoring"
TB_DIR = "tb"
CONFIG_HISTORY_DIR = "config_history"  # NN-config.yaml + NN-changes.json before each resume that changed keys
