"""Hardware-aware search: the best student under a latency budget measured on the target, as a deployable bundle.

Optuna drives the trials. Before the first one, the latency map measures the space's candidates on the target (only
the under-budget ones are offered to the sampler); each trial then trains its candidate with dual SKD, reporting validation metrics to a pruner. The winner is trained
with the full schedule, re-measured (it must meet the budget again) and exported. See docs/search.md.

Public surface: SearchConfig, run_search, load_space, SearchSpace, list_spaces, Stages, real_stages, TrialRecord, and
the deployment dimension (Deployment, DeploySpace, filter_deployments: see edgeskd.search.deployment).
"""

from edgeskd.search.config import SearchConfig, default_study_name
from edgeskd.search.deployment import Deployment, DeploySpace, filter_deployments
from edgeskd.search.driver import run_search
from edgeskd.search.records import TrialRecord
from edgeskd.search.space import SearchSpace, list_spaces, load_space
from edgeskd.search.stages import Stages, real_stages

__all__ = ["SearchConfig", "default_study_name", "run_search", "SearchSpace", "list_spaces", "load_space", "Stages",
           "real_stages", "TrialRecord", "Deployment", "DeploySpace", "filter_deployments"]
