/*
 * help.c - the --help texts. docs/cli.md repeats each one verbatim, and
 * test/cli/test_docs_match_help.sh fails when they drift apart.
 */
#include <string.h>

#include "cli.h"

static const char main_help[] =
    "Usage: diskmeans COMMAND [OPTIONS]\n"
    "\n"
    "Exact, deterministic k-means for vector indexes, in memory or streamed from disk.\n"
    "\n"
    "Commands:\n"
    "  train    train k centroids on the rows of a file\n"
    "  assign   label every row of a file with its nearest centroid\n"
    "  info     describe a file and what training on it would need\n"
    "  help     show the help of a command (diskmeans help train)\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help\n"
    "  -V, --version  show the version\n"
    "\n"
    "Input files: .fvecs, .bvecs, .npy (2-D, C order), IDX (MNIST, optionally .gz),\n"
    "or raw rows with --dim and --dtype. The format is detected from the file.\n"
    "\n"
    "Exit status: 0 on success, 1 on an error, 2 on a usage error,\n"
    "128 + N when stopped by signal N (130 for Ctrl-C).\n";

static const char train_help[] =
    "Usage: diskmeans train INPUT -k K -o CENTROIDS [OPTIONS]\n"
    "\n"
    "Trains K centroids on the rows of INPUT and writes them to CENTROIDS\n"
    "(.npy float32 K x D, or .fvecs, chosen by the extension).\n"
    "\n"
    "Training:\n"
    "  -k, --k K                       number of centroids (required, >= 1)\n"
    "  -o, --output CENTROIDS          output file, .npy or .fvecs (required)\n"
    "      --iters N                   Lloyd iterations at most (default 25)\n"
    "      --tol T                     stop when the objective improves by at most\n"
    "                                  T times its value (default 1e-4; 0: never)\n"
    "      --seed S                    random seed (default 1234)\n"
    "      --init random|kmeans++|greedy-kmeans++|FILE\n"
    "                                  initial centroids (default kmeans++):\n"
    "                                  kmeans++ costs about one iteration,\n"
    "                                  greedy-kmeans++ (as scikit-learn) about\n"
    "                                  2 + ln K; FILE is a .npy or .fvecs of K rows\n"
    "      --metric l2|cosine|ip       distance (default l2)\n"
    "      --redo N                    train N times with different seeds, keep the\n"
    "                                  best objective (default 1)\n"
    "      --max-points-per-centroid M train on a sample of at most M * K rows\n"
    "                                  (default 256; 0: all rows)\n"
    "      --strategy auto|flat|hierarchical\n"
    "                                  how to train (default auto: flat below\n"
    "                                  K = 4096, else hierarchical: coarse\n"
    "                                  centroids, each group of rows trained into\n"
    "                                  its share of K, then refinement passes)\n"
    "      --refine N                  hierarchical: refinement passes over all\n"
    "                                  the sample rows (default 2; 0: none)\n"
    "      --balance                   even out the cluster sizes: every update\n"
    "                                  but the last moves the centroids of\n"
    "                                  clusters below 0.7x the mean size to split\n"
    "                                  those above 1.5x the mean\n"
    "      --threads T                 worker threads (default 0: all cores)\n"
    "\n"
    "Storage:\n"
    "      --storage auto|memory|disk  where the sample lives (default auto: in\n"
    "                                  memory when it fits --memory-limit)\n"
    "      --memory-limit SIZE         memory the sample may take, e.g. 512M, 4G\n"
    "                                  (default: half of the RAM); the centroids\n"
    "                                  and buffers come on top (info -k shows\n"
    "                                  the estimated peak)\n"
    "      --tmp-dir DIR               folder of the spill file (default: $TMPDIR,\n"
    "                                  else /tmp)\n"
    "      --block-rows N              rows per block (default 0: automatic; never\n"
    "                                  changes the result)\n"
    "\n"
    "Outputs:\n"
    "      --labels LABELS.npy         also label every row of INPUT (int32 .npy)\n"
    "      --stats STATS.json          write parameters, per-iteration statistics,\n"
    "                                  cluster sizes, timings and memory as JSON\n"
    "      --checkpoint FILE           save the training state to FILE after every\n"
    "                                  iteration and stage, atomically (removed\n"
    "                                  once the outputs are written)\n"
    "      --resume                    go on from --checkpoint FILE after a crash\n"
    "                                  or a kill: the same result as a run never\n"
    "                                  interrupted; --threads, --storage,\n"
    "                                  --block-rows, --tmp-dir may differ\n"
    "  -q, --quiet                     print nothing but errors\n"
    "\n"
    "Input:\n"
    "      --format F                  auto, fvecs, bvecs, npy, idx or raw\n"
    "                                  (default auto)\n"
    "      --dim D                     values per row of a raw file (implies raw)\n"
    "      --dtype T                   element type of a raw file: f32, f16, f64,\n"
    "                                  u8 or i8 (default f32)\n"
    "\n"
    "Progress goes to stderr (a bar on a terminal, one line per iteration\n"
    "otherwise); a summary goes to stdout. Outputs are replaced atomically: a run\n"
    "that fails or is interrupted leaves existing files untouched.\n";

static const char assign_help[] =
    "Usage: diskmeans assign INPUT -c CENTROIDS -o LABELS.npy [OPTIONS]\n"
    "\n"
    "Labels every row of INPUT with the index of its nearest centroid (int32 .npy).\n"
    "\n"
    "Options:\n"
    "  -c, --centroids CENTROIDS  centroids, .npy or .fvecs (required)\n"
    "  -o, --output LABELS.npy    output labels (required)\n"
    "      --distances D.npy      also write the distance of every row to its\n"
    "                             centroid (float32 .npy)\n"
    "      --metric l2|cosine|ip  distance (default: the metric train recorded in\n"
    "                             a .npy CENTROIDS, else l2); one that\n"
    "                             contradicts the record is an error\n"
    "      --threads T            worker threads (default 0: all cores)\n"
    "      --block-rows N         rows per block (default 0: automatic)\n"
    "  -q, --quiet                print nothing but errors\n"
    "      --format F             auto, fvecs, bvecs, npy, idx or raw (default auto)\n"
    "      --dim D                values per row of a raw file (implies raw)\n"
    "      --dtype T              element type of a raw file: f32, f16, f64, u8 or\n"
    "                             i8 (default f32)\n"
    "\n"
    "A summary of the labels goes to stdout: rows, clusters used, the largest\n"
    "and smallest cluster, the mean distance.\n";

static const char info_help[] =
    "Usage: diskmeans info INPUT [-k K] [OPTIONS]\n"
    "\n"
    "Prints the format, rows, dimension, element type and size of INPUT. With -k,\n"
    "also what training would need: the sample, the spill file, the memory in\n"
    "memory and disk mode, which one --storage auto would choose, the training\n"
    "strategy and its arithmetic against flat training.\n"
    "\n"
    "Options:\n"
    "  -k, --k K                       number of centroids to plan for\n"
    "      --max-points-per-centroid M sample at most M * K rows (default 256;\n"
    "                                  0: all rows)\n"
    "      --memory-limit SIZE         memory the sample may take (the budget of\n"
    "                                  --storage auto), e.g. 4G (default: half\n"
    "                                  of the RAM)\n"
    "      --storage auto|memory|disk  storage to plan for (default auto)\n"
    "      --strategy auto|flat|hierarchical\n"
    "                                  strategy to plan for (default auto)\n"
    "      --refine N                  hierarchical: refinement passes to plan\n"
    "                                  for (default 2)\n"
    "      --threads T                 worker threads (default 0: all cores)\n"
    "      --block-rows N              rows per block (default 0: automatic)\n"
    "      --json                      print JSON instead of text\n"
    "      --format F                  auto, fvecs, bvecs, npy, idx or raw\n"
    "                                  (default auto)\n"
    "      --dim D                     values per row of a raw file (implies raw)\n"
    "      --dtype T                   element type of a raw file: f32, f16, f64,\n"
    "                                  u8 or i8 (default f32)\n";

const char *cli_help_text(const char *cmd) {
  if (cmd == NULL) {
    return main_help;
  }
  if (strcmp(cmd, "train") == 0) {
    return train_help;
  }
  if (strcmp(cmd, "assign") == 0) {
    return assign_help;
  }
  if (strcmp(cmd, "info") == 0) {
    return info_help;
  }
  if (strcmp(cmd, "help") == 0) {
    return main_help;
  }
  return NULL;
}
