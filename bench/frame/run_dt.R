# data.table side of the frame-operations benchmark (bench/frame/compare.sh),
# one thread.  Same operations, same output lines as run_spillover.lua:
#   Rscript bench/frame/run_dt.R bench/data/frame_10000000.csv bench/data/frame_lookup.csv
suppressMessages(library(data.table))
setDTthreads(1)
args <- commandArgs(trailingOnly = TRUE)
d <- fread(args[1])
lk <- fread(args[2])
n <- nrow(d)
# keyby: groups in ascending key order, as spillover's aggregate returns them;
# lk[d, on =] is the left join keeping d's rows in d's order.
ops <- list(
  sort_int = list(function() d[order(id)],
                  function(r) r$id[1] + r$id[n] + r$x[1] + r$x[n]),
  sort_dbl = list(function() d[order(x)],
                  function(r) r$id[1] + r$id[n] + r$x[1] + r$x[n]),
  sort_2key = list(function() d[order(g, id)],
                   function(r) r$id[1] + r$id[n] + r$x[1] + r$x[n]),
  sort_2key_dbl = list(function() d[order(g, -x)],
                       function(r) r$id[1] + r$id[n] + r$x[1] + r$x[n]),
  group_int = list(function() d[, .(x_sum = sum(x), y_mean = mean(y)), keyby = id],
                   function(r) { k <- nrow(r); r$x_sum[1] + r$x_sum[k] + r$y_mean[1] + r$y_mean[k] + k }),
  group_str = list(function() d[, .(x_sum = sum(x), y_mean = mean(y)), keyby = g],
                   function(r) { k <- nrow(r); r$x_sum[1] + r$x_sum[k] + r$y_mean[1] + r$y_mean[k] + k }),
  join_m1 = list(function() lk[d, on = "id"],
                 function(r) r$w[1] + r$w[n] + nrow(r))
)
for (name in names(ops)) {
  times <- numeric(3)
  cpu <- numeric(3)
  for (k in 1:3) {
    res <- NULL
    invisible(gc())
    t <- proc.time()
    res <- ops[[name]][[1]]()
    d_t <- proc.time() - t
    times[k] <- d_t[["elapsed"]]
    cpu[k] <- d_t[["user.self"]] + d_t[["sys.self"]]
  }
  cat(sprintf("%s first=%.4f warm=%.4f cpu_first=%.4f cpu_warm=%.4f check=%.10g\n", name, times[1], min(times[2:3]),
              cpu[1], min(cpu[2:3]), ops[[name]][[2]](res)))
}
