/*
 * rampay-kafka-mock: a Kafka-protocol broker for RamPay's tests and CI.
 *
 * No Kafka broker is packaged for the machines RamPay builds on, so this program hosts librdkafka's built-in mock
 * cluster (rdkafka_mock.h, Debian's librdkafka-dev). The mock cluster speaks the real Kafka protocol on loopback TCP
 * ports, so any other process (Confluent.Kafka, kcat) can produce to and consume from it while this process lives.
 * It keeps everything in memory: it is for tests only; a deployment points at a real Kafka cluster.
 *
 * Usage: rampay-kafka-mock [--brokers N] [--bootstrap-file PATH] [TOPIC:PARTITIONS ...]
 *   --brokers N            brokers in the cluster (default 1; a bare number as the first argument works too)
 *   --bootstrap-file PATH  also write the bootstrap servers to PATH (written whole, then renamed into place)
 *   TOPIC:PARTITIONS       topics created up front (replication factor min(N, 3)); others are auto-created on use
 * Prints the bootstrap servers ("127.0.0.1:PORT,...") as one line on stdout, then runs until SIGTERM or SIGINT.
 * Exit codes: 0 after a signal, 2 for bad arguments, 1 when the cluster cannot be created.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out) {
    fprintf(out, "usage: rampay-kafka-mock [--brokers N] [--bootstrap-file PATH] [TOPIC:PARTITIONS ...]\n");
}

static int parse_positive(const char *text, int *value) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 1 || v > 1000) return -1;
    *value = (int)v;
    return 0;
}

/* Writes the line to PATH.tmp and renames it over PATH, so a reader polling for PATH never sees half a line. */
static int write_bootstrap_file(const char *path, const char *bootstraps) {
    size_t len = strlen(path) + 5;
    char *tmp = malloc(len);
    if (tmp == NULL) return -1;
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "rampay-kafka-mock: cannot write %s: %s\n", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int failed = fprintf(f, "%s\n", bootstraps) < 0;
    failed |= fclose(f) != 0;
    if (!failed && rename(tmp, path) != 0) {
        fprintf(stderr, "rampay-kafka-mock: cannot rename %s to %s: %s\n", tmp, path, strerror(errno));
        failed = 1;
    }
    free(tmp);
    return failed ? -1 : 0;
}

int main(int argc, char **argv) {
    int brokers = 1;
    const char *bootstrap_file = NULL;
    int first_topic = argc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            if (parse_positive(argv[++i], &brokers) != 0) {
                fprintf(stderr, "rampay-kafka-mock: --brokers needs a number from 1 to 1000\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--bootstrap-file") == 0 && i + 1 < argc) {
            bootstrap_file = argv[++i];
        } else if (i == 1 && parse_positive(argv[i], &brokers) == 0) {
            /* a bare broker count as the first argument */
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "rampay-kafka-mock: unknown or incomplete option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            first_topic = i;
            break;
        }
    }

    /* Check every topic argument before starting anything. */
    for (int i = first_topic; i < argc; i++) {
        const char *colon = strrchr(argv[i], ':');
        int partitions = 0;
        if (colon == NULL || colon == argv[i] || parse_positive(colon + 1, &partitions) != 0) {
            fprintf(stderr, "rampay-kafka-mock: bad topic '%s' (want NAME:PARTITIONS, partitions 1..1000)\n", argv[i]);
            return 2;
        }
    }

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The handle only hosts the cluster; it never connects anywhere itself. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rampay-kafka-mock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "rampay-kafka-mock: rd_kafka_new failed: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(rk, brokers);
    if (cluster == NULL) {
        fprintf(stderr, "rampay-kafka-mock: rd_kafka_mock_cluster_new(%d) failed\n", brokers);
        rd_kafka_destroy(rk);
        return 1;
    }

    int replication = brokers < 3 ? brokers : 3;
    for (int i = first_topic; i < argc; i++) {
        char *name = strdup(argv[i]);
        char *colon = strrchr(name, ':');
        *colon = '\0';
        int partitions = atoi(colon + 1);
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster, name, partitions, replication);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "rampay-kafka-mock: cannot create topic %s: %s\n", name, rd_kafka_err2str(err));
            free(name);
            rd_kafka_mock_cluster_destroy(cluster);
            rd_kafka_destroy(rk);
            return 1;
        }
        fprintf(stderr, "rampay-kafka-mock: topic %s with %d partitions\n", name, partitions);
        free(name);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);
    printf("%s\n", bootstraps);
    fflush(stdout);
    if (bootstrap_file != NULL && write_bootstrap_file(bootstrap_file, bootstraps) != 0) {
        rd_kafka_mock_cluster_destroy(cluster);
        rd_kafka_destroy(rk);
        return 1;
    }

    /* The cluster runs on librdkafka's own threads; this one only waits for a signal. */
    while (!stop_requested) usleep(100 * 1000);

    fprintf(stderr, "rampay-kafka-mock: stopping\n");
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(rk);
    return 0;
}
