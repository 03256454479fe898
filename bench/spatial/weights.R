# bench/spatial/weights.R N k cutoff: spdep's k-nearest-neighbour and
# distance-band weights on the points bench/spatial/weights.lua wrote, the
# same weights as spillover builds (kNN row-standardised; inverse distances
# 1/d within the cutoff, row-standardised, islands allowed).  Prints the CPU
# times.
suppressMessages(library(spdep))
args <- commandArgs(TRUE); N <- as.integer(args[1]); k <- as.integer(args[2]); cutoff <- as.numeric(args[3])
p <- read.csv(sprintf("bench/data/points_%d.csv", N)); xy <- cbind(p$x, p$y)
cpu <- function(e) { t <- proc.time(); force(e); u <- proc.time() - t; u[["user.self"]] + u[["sys.self"]] }
t_knn <- cpu(W <- nb2listw(knn2nb(knearneigh(xy, k = k)), style = "W"))
t_band <- cpu(suppressWarnings({  # islands: rows of zeros, as zero_policy
  nb <- dnearneigh(xy, 0, cutoff)
  D <- nb2listw(nb, glist = lapply(nbdists(nb, xy), function(d) 1 / d), style = "W", zero.policy = TRUE)
}))
cat(sprintf("R spdep weights N=%d: knn(k=%d) %.3fs, distance(cutoff=%g, %d links) %.3fs\n", N, k, t_knn, cutoff,
            sum(card(nb)), t_band))
