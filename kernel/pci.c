// PCI configuration mechanism #1: write the address of a dword to 0xCF8,
// read or write it at 0xCFC. Only used at boot, with nothing else touching
// these ports, so no lock.
#include "pci.h"
#include "x86.h"

#define PCI_ADDR_PORT 0xcf8
#define PCI_DATA_PORT 0xcfc
#define PCI_CFG_VENDOR   0x00
#define PCI_CFG_HEADER   0x0e
#define PCI_HEADER_MULTIFUNCTION 0x80
#define PCI_NO_DEVICE    0xffff

static void select_dword(const struct pci_dev *d, uint8_t off)
{
    outl(PCI_ADDR_PORT, 0x80000000u | (uint32_t)d->bus << 16 | (uint32_t)d->dev << 11 |
                        (uint32_t)d->fn << 8 | (off & 0xfc));
}

uint32_t pci_read32(const struct pci_dev *d, uint8_t off)
{
    select_dword(d, off);
    return inl(PCI_DATA_PORT);
}

uint16_t pci_read16(const struct pci_dev *d, uint8_t off)
{
    return (uint16_t)(pci_read32(d, off) >> ((off & 2) * 8));
}

void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v)
{
    uint32_t old = pci_read32(d, off);
    uint32_t shift = (off & 2) * 8;
    uint32_t merged = (old & ~(0xffffu << shift)) | (uint32_t)v << shift;
    select_dword(d, off);
    outl(PCI_DATA_PORT, merged);
}

static bool matches(struct pci_dev *d, uint16_t vendor, uint16_t device)
{
    uint32_t id = pci_read32(d, PCI_CFG_VENDOR);
    d->vendor = (uint16_t)id;
    d->device = (uint16_t)(id >> 16);
    return d->vendor == vendor && d->device == device;
}

// Functions 1..7 exist only behind a multi-function function 0; probing
// them otherwise can show function 0 again on some chipsets.
static bool scan_slot(uint8_t bus, uint8_t dev, uint16_t vendor, uint16_t device,
                      struct pci_dev *out)
{
    struct pci_dev d = { .bus = bus, .dev = dev, .fn = 0 };
    if (pci_read16(&d, PCI_CFG_VENDOR) == PCI_NO_DEVICE)
        return false;
    uint8_t nfn = (pci_read32(&d, PCI_CFG_HEADER & 0xfc) >> 16) & PCI_HEADER_MULTIFUNCTION ? 8 : 1;
    for (uint8_t fn = 0; fn < nfn; fn++) {
        d.fn = fn;
        if (matches(&d, vendor, device)) {
            *out = d;
            return true;
        }
    }
    return false;
}

bool pci_find(uint16_t vendor, uint16_t device, struct pci_dev *out)
{
    for (unsigned bus = 0; bus < 256; bus++)
        for (uint8_t dev = 0; dev < 32; dev++)
            if (scan_slot((uint8_t)bus, dev, vendor, device, out))
                return true;
    return false;
}

uint16_t pci_io_bar(const struct pci_dev *d, int n)
{
    uint32_t bar = pci_read32(d, (uint8_t)(PCI_CFG_BAR0 + 4 * n));
    if (!(bar & 1))
        return 0;                       // a memory BAR
    return (uint16_t)(bar & ~3u);
}
