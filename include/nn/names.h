/* Choices named on the command line and in checkpoints (activation, loss, schedule,
 * sum mode, compression): each module keeps its table of names, indexed by its enum. */
#ifndef NN_NAMES_H
#define NN_NAMES_H

#include <string.h>

/* The index of text in names[0, count), or -1. */
static inline int nn_name_index(const char *text, const char *const *names, int count) {
    for (int i = 0; i < count; i++)
        if (!strcmp(text, names[i])) return i;
    return -1;
}

#define NN_COUNT_OF(array) ((int)(sizeof(array) / sizeof((array)[0])))

#endif
