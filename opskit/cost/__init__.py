"""Cost estimates: a pricing catalog shipped as data and a pure Infracost-like estimator."""
