"""Label assignment: fine/coarse candidates, SimOTA, and the lead-guided strategies (paper §4.2)."""

from .candidates import COARSE, FINE, Candidates, find_candidates, level_candidates
from .lead_guided import STRATEGIES, AuxStrategy, assign
from .simota import simota_match

__all__ = ["COARSE", "FINE", "STRATEGIES", "AuxStrategy", "Candidates", "assign", "find_candidates", "level_candidates",
           "simota_match"]
