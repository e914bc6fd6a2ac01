"""The ModelRollout operator: thin kopf handlers over :mod:`vidrec.rollout.operator`."""
