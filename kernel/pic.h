#ifndef PIC_H
#define PIC_H
void pic_disable(void);
#endif
