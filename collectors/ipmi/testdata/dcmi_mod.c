/* Test fixture for greenloop (collectors/ipmi): adds DCMI Get Power Reading to
 * OpenIPMI's ipmi_sim, which answers DCMI with "invalid command". The power
 * in watts is read from the file named in the loadlib options; min, max and
 * average are derived from it (-20, +30, equal). Same licence as greenloop. */
/* DCMI Get Power Reading (NetFn 0x2C, group ext 0xDC, cmd 0x02) for ipmi_sim. */
#include <stdio.h>
#include <time.h>
#include <OpenIPMI/serv.h>
#include <OpenIPMI/mcserv.h>
static char power_file[256];
static unsigned int read_watts(void) {
    unsigned int w = 320; FILE *f = fopen(power_file, "r");
    if (f) { if (fscanf(f, "%u", &w) != 1) w = 320; fclose(f); }
    return w;
}
static void put16(unsigned char *p, unsigned int v) { p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; }
static void put32(unsigned char *p, unsigned int v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }
static void dcmi_handler(lmc_data_t *mc, msg_t *msg, unsigned char *rdata,
                         unsigned int *rdata_len, void *cb_data) {
    if (msg->cmd != 0x02) { handle_invalid_cmd(mc, rdata, rdata_len); return; }
    unsigned int w = read_watts();
    rdata[0] = 0x00; rdata[1] = 0xdc;                 /* completion code, group ext */
    put16(rdata + 2, w); put16(rdata + 4, w - 20);    /* current, min */
    put16(rdata + 6, w + 30); put16(rdata + 8, w);    /* max, avg */
    put32(rdata + 10, (unsigned int) time(NULL));     /* timestamp */
    put32(rdata + 14, 1000);                          /* statistics period, ms */
    rdata[18] = 0x40;                                 /* power measurement active */
    *rdata_len = 19;
}
int ipmi_sim_module_print_version(sys_data_t *sys, char *options) { printf("dcmi_mod 0.1\n"); return 0; }
int ipmi_sim_module_init(sys_data_t *sys, const char *options) {
    snprintf(power_file, sizeof(power_file), "%s", options ? options : "");
    ipmi_emu_register_group_extension_handler(0xdc, dcmi_handler, NULL);
    return 0;
}
