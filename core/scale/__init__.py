"""Scale-out on Ray: the cluster session, Ray Data embedding and prediction, sweeps on Ray Tune."""
