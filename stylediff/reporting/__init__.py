"""The report of the workflow's runs: its tables (:mod:`.tables`) and figures (:mod:`.figures`), the
statistics the results page states (:mod:`.statistics`), the guidance methods compared at matched fidelity
(:mod:`.comparison`, written by :mod:`.methods_findings`) and how numbers are written (:mod:`.markdown`)."""
